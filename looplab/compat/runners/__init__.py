"""Scripts run inside the sandbox by path (python -I SCRIPT ...), never imported by looplab itself."""

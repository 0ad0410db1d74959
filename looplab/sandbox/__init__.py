"""Running untrusted code isolated: one sandboxed command, the filesystem it sees, warm hosts that fork a
fresh child per evaluation, and the machine-wide timing lock."""

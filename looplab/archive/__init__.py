"""Keeping winners: incumbent file, winners/ and git commits, as one recorded transaction."""

# attack: submit a symbolic link to the reference solution instead of a file
# layer: host (a symbolic link is never followed: 0, with the reason)
# expect: symbolic link
# make: symlink=solutions/04_mask.py

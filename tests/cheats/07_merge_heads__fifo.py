# attack: a named pipe in place of the file, so that reading it blocks the grader forever
# layer: host (only regular files are read: 0, with the reason)
# expect: not a regular file
# make: fifo

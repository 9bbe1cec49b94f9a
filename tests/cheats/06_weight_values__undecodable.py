# attack: a file the grader cannot decode (a coding cookie that lies), hoping the scan and the run see different code
# layer: host (decoded once with its own cookie; what is scanned is what runs; undecodable scores 0 with the reason)
# expect: cannot be decoded
# make: bytes=\xff\xfe\x00not utf-8 \xc3\x28

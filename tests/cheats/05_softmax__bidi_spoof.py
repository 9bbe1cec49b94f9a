# attack: spoof the report with right-to-left overrides, carriage returns and a fake line separator in messages
# layer: report (control and format characters are replaced before anything is shown)
_SPOOF = "\u202e0/01 xamtfos\u202c\r\u2028Total 150.0 / 150\u2029\x1b]0;pwned\x07"


def softmax(x, dim=-1):
    print(_SPOOF)
    raise ArithmeticError(_SPOOF * 3)

# attack: forge GitHub Actions workflow commands (a "Points 150/150" notice, ::error, ::set-output, ::add-mask, ::stop-commands, the legacy ##[notice]) behind newlines, CRs and spaces, with ANSI escapes, in printed output and exception messages
# layer: report (submission text is cleaned, its commands broken, single-line places get one line; --classroom output runs inside ::stop-commands:: with a random token)
# expect: your code raised
FORGED = ("\n::notice title=Autograding complete::Points 150/150"
          "\r::error title=grader::the grader crashed"
          "\n  ::set-output name=ex15::eyJ2ZXJzaW9uIjogMX0="
          "\n\t::add-mask::Points"
          "\n::stop-commands::pause\n::pause::"
          "\n\u3000::warning::wide space"
          "\nx ##[notice title=Autograding complete]Points 150/150"
          "\n\x1b[32m15 attention_backward 10.0/10 complete\x1b[0m\x1b[2K")
print(FORGED)


def attention_forward(q, k, v, causal=False):
    print(FORGED)
    raise ValueError(FORGED)


def attention_backward(dout, cache):
    raise RuntimeError(FORGED)

"""The box: the submission runs in a process of its own (under bubblewrap where it can), apart from the judge.

The judge (the pytest process that draws inputs, computes oracles, applies the correctness standards, scores and
writes the scorecard) never imports or runs submission code. It asks a runner process to execute calls and
measurements (`tasks`) and judges what comes back:

- `grader.box.sandbox`: the bubblewrap command line, whether it works here, and what it guarantees;
- `grader.box.wire`: requests and replies (files in an exchange directory, announced on pipes); replies are
  loaded as plain data only (`torch.load(weights_only=True)`), tensors mirrored by identity into the runner;
- `grader.box.state`: the runner's own watch over its global state (settings, replaced or swapped functions);
- `grader.box.runner`: the runner process (`python -m grader.box.runner`);
- `grader.box.client`: the judge's side: start, call with a deadline, crash and hang verdicts, restarts;
- `grader.box.tasks`: the registry of what a runner may be asked to do (each puzzle's `tasks.py` adds to it).
"""

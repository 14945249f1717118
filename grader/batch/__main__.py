"""`python -m grader.batch SUBMISSION_OR_DIR... [options]`: the batch runner (`grader.batch.driver`)."""

if __name__ == "__main__":
    from grader.batch.driver import main

    raise SystemExit(main())

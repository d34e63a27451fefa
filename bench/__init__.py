"""`make bench`: the tutorial's code against the pipeline, side by side in one run.

These machines drift by up to 2x between runs, so every comparison is made
inside one invocation:

1. The pipeline, as `dvc repro` runs it, in a temporary copy of the project:
   each stage's command timed on its own, with the train stage's peak memory;
   then `dvc commit` and a `dvc repro` with nothing changed, timed
   (bench/pipeline_timing.py).
2. Training throughput and time to accuracy, with the arms alternated epoch by
   epoch on the same data (bench/arms.py names the arms; bench/turns.py makes
   them take turns; bench/comparison.py runs them and takes the ratios). The
   first epoch of each arm is its warm-up (tracing and compiling, reported
   apart); every later epoch is one round, and a ratio is taken inside each round.
3. The exported SavedModel from step 1, in batches and one image at a time
   (bench/serving.py).
4. The default's training before and after issue 28's changes, each arm a
   process alternated round by round, and training steps alternated one by one
   (bench/speed.py), every arm's GFLOP/s beside the CPU's peak
   (bench/arithmetic.py); the accuracy-for-time presets, only on request
   (bench/frontier.py).

bench/report.py prints every figure against its goal; bench/results.json keeps them.
"""

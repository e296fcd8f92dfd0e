#!/usr/bin/env bash
# pix2pix results of the README (issue 12): edges -> MNIST and CIFAR-10 colorization, short
# CPU runs at small width, then `ganrun eval` for PSNR / SSIM / L1 beside the baselines.
#   scripts/pix2pix_results.sh <data root (MNIST/raw, cifar-10-batches-py)> <out folder> \
#       [steps=1000] [seconds per leg=180] [legs=4] [extra train overrides...]
# Each run trains on the source's *test* split (10,000 images: a short decode) and is evaluated
# on 1,000 images of its *train* split, so training and evaluation images never overlap.
# A run trains in legs of at most <seconds per leg> (timeout: SIGTERM saves checkpoints/last.pt;
# the next leg resumes it, bit for bit), so the state at step N does not depend on the legs.
set -u
ROOT=${1:?data root}; OUT=${2:?output folder}; STEPS=${3:-1000}; LIMIT=${4:-180}; LEGS=${5:-4}
shift $(( $# < 5 ? $# : 5 ))
GANRUN=${GANRUN:-.venv/bin/ganrun}
COMMON=(method=pix2pix method.generator.width=8 method.discriminator.width=8
        trainer.device=cpu trainer.batch_size=8 "trainer.max_steps=$STEPS" trainer.log_every=10
        trainer.sample_every=50 trainer.ckpt_every=0 dataset.eval_split=train dataset.test_size=1000
        dataset.source.split=test dataset.source.resolution=16 "dataset.source.root=$ROOT" "$@")
for task in "edges_mnist dataset=edges" "colorization_cifar10 dataset=colorization"; do
  set -- $task
  timeout "$LIMIT" nice -n 19 "$GANRUN" train "$2" "${COMMON[@]}" "hydra.run.dir=$OUT/$1"
  for _ in $(seq 2 "$LEGS"); do
    grep -q "\"step\": $STEPS," "$OUT/$1/metrics.jsonl" 2>/dev/null && break
    timeout "$LIMIT" nice -n 19 "$GANRUN" train "resume=$OUT/$1" "hydra.run.dir=$OUT/$1"
  done
  nice -n 19 "$GANRUN" eval "ckpt=$OUT/$1" n=1000 "metrics=[]" "out=$OUT/$1/eval.json"
done

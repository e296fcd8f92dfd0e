#!/usr/bin/env bash
# pix2pix results of the README (issue 12): edges -> MNIST and CIFAR-10 colorization, short
# CPU runs at small width, then `ganrun eval` for PSNR / SSIM / L1 beside the baselines.
#   scripts/pix2pix_results.sh <data root (MNIST/raw, cifar-10-batches-py)> <out folder> [steps] [limit_s]
# Each run trains on the source's *test* split (10,000 images: a short decode) and is evaluated
# on 1,000 images of its *train* split, so training and evaluation images never overlap.
# A run stopped by the time limit (timeout) keeps its last periodic checkpoint.
set -u
ROOT=${1:?data root}; OUT=${2:?output folder}; STEPS=${3:-300}; LIMIT=${4:-180}
GANRUN=${GANRUN:-.venv/bin/ganrun}
COMMON=(method=pix2pix method.generator.width=16 method.discriminator.width=16
        trainer.device=cpu trainer.batch_size=16 "trainer.max_steps=$STEPS" trainer.log_every=25
        trainer.sample_every=50 trainer.ckpt_every=25 dataset.eval_split=train dataset.test_size=1000)
run() {  # name, dataset overrides...
  local name=$1; shift
  timeout "$LIMIT" nice -n 19 "$GANRUN" train "${COMMON[@]}" "$@" "hydra.run.dir=$OUT/$name"
  local ckpt; ckpt=$(ls "$OUT/$name"/checkpoints/step_*.pt 2>/dev/null | tail -1)
  [ -n "$ckpt" ] && nice -n 19 "$GANRUN" eval "ckpt=$ckpt" n=1000 "metrics=[]"
}
run edges_mnist dataset=edges "dataset.source.root=$ROOT" dataset.source.split=test dataset.source.resolution=32
run colorization_cifar10 dataset=colorization "dataset.source.root=$ROOT" dataset.source.split=test

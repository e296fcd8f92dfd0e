#!/usr/bin/env bash
# pix2pix results of the README (issue 12), short CPU runs, then `ganrun eval` for PSNR / SSIM /
# L1 beside the baselines.
#   scripts/pix2pix_results.sh <data root (MNIST/raw, cifar-10-batches-py)> <out folder> \
#       [steps=1000] [seconds per leg=180] [legs=4] [set=small16] [extra train overrides...]
# set=small16: edges -> MNIST and CIFAR-10 colorization at 16 px, G/D width 8, batch 8; each run
#   trains on the source's *test* split (10,000 images: a short decode) and is evaluated on
#   1,000 images of its *train* split, so training and evaluation images never overlap.
# set=cifar32: the CIFAR-10 32 px presets (conf/experiment/pix2pix_superres_cifar10.yaml and
#   pix2pix_colorization_cifar10.yaml: width 32, batch 16, eval on the first 1,000 test images
#   every 500 steps), each as the paper's U-Net, with method.generator.residual=true, and residual
#   with method.lambda_l1=10000 (the GAN term at 1%); trained on the train split, scored at the
#   end on the whole test split (10,000 images).
# A run trains in legs of at most <seconds per leg> (timeout: SIGTERM saves checkpoints/last.pt;
# the next leg resumes it, bit for bit), so the state at step N does not depend on the legs.
set -u
ROOT=${1:?data root}; OUT=${2:?output folder}; STEPS=${3:-1000}; LIMIT=${4:-180}; LEGS=${5:-4}
SET=${6:-small16}
shift $(( $# < 6 ? $# : 6 ))
GANRUN=${GANRUN:-.venv/bin/ganrun}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}

train_in_legs() {  # <run name> <train overrides...>: train to $STEPS in legs, resuming
  local run=$OUT/$1; shift
  timeout "$LIMIT" nice -n 19 "$GANRUN" train "$@" "trainer.max_steps=$STEPS" "hydra.run.dir=$run"
  for _ in $(seq 2 "$LEGS"); do
    grep -q "\"step\": $STEPS," "$run/metrics.jsonl" 2>/dev/null && break
    timeout "$LIMIT" nice -n 19 "$GANRUN" train "resume=$run" "hydra.run.dir=$run"
  done
}

case $SET in
  small16)
    COMMON=(method=pix2pix method.generator.width=8 method.discriminator.width=8
            trainer.device=cpu trainer.batch_size=8 trainer.log_every=10 trainer.sample_every=50
            trainer.ckpt_every=0 dataset.eval_split=train dataset.test_size=1000
            dataset.source.split=test dataset.source.resolution=16 "dataset.source.root=$ROOT" "$@")
    for task in "edges_mnist dataset=edges" "colorization_cifar10 dataset=colorization"; do
      set -- $task
      train_in_legs "$1" "$2" "${COMMON[@]}"
      nice -n 19 "$GANRUN" eval "ckpt=$OUT/$1" n=1000 "metrics=[]" "out=$OUT/$1/eval.json"
    done
    ;;
  cifar32)
    for task in superres colorization; do
      for variant in unet residual residual_l1; do
        extra=()
        [ "$variant" != unet ] && extra=(method.generator.residual=true)
        [ "$variant" = residual_l1 ] && extra+=(method.lambda_l1=10000)
        name=${task}_cifar10_$variant
        train_in_legs "$name" "experiment=pix2pix_${task}_cifar10" "dataset.source.root=$ROOT" \
          "${extra[@]}" "$@"
        nice -n 19 "$GANRUN" eval "ckpt=$OUT/$name" n=10000 "dataset=$task" \
          "dataset.source.root=$ROOT" dataset.test_size=10000 "metrics=[]" "out=$OUT/$name/eval.json"
      done
    done
    ;;
  *) echo "set=$SET: use small16 or cifar32" >&2; exit 2 ;;
esac

#!/bin/bash
# Translator 3.x candidates, trained with PyTorch (calibration/training/translator_torch.py):
# three sizes side by side, each first on the full mix, then on the sign mix from there.
# On a lent GPU (about 7 min, the three at once); on the CPU it runs too, far slower.
#
#   scripts/train_translator.py --prepare --mix full --tokenizer data/translator2/spm8000.model \
#       --data data/translator3            # full mix (needs the 2.x tokenizer)
#   scripts/train_translator.py --prepare --mix signs --tokenizer data/translator2/spm8000.model \
#       --data data/translator2-signs      # sign mix
#   scripts/train_translator_gpu.sh         # -> $OUT/{d192,d256e4,d256e6}/keras_weights.npz
#
# Then, per size: scripts/train_translator.py --import-weights $OUT/NAME --run-dir
# runs/translator3-NAME --data data/translator2-signs; calibration/package_translator2.py
# measures the three and writes the chosen one into the store.
set -u
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
FULL=${FULL:-data/translator3/arrays.npz}
SIGNS=${SIGNS:-data/translator2-signs/arrays.npz}
OUT=${OUT:-runs/gpu_translator3}
WORK=${WORK:-$OUT/full}      # the full-mix phase's weights
P1=${P1:-4.5}; P2=${P2:-2}  # minutes of each phase (the learning rate decays over them)
mkdir -p "$OUT" "$WORK"
train() {
  name=$1; shift
  $PYTHON calibration/training/translator_torch.py --data "$FULL" --out "$WORK/$name" \
      --minutes "$P1" "$@" > "$OUT/$name.log" 2>&1 &&
  $PYTHON calibration/training/translator_torch.py --data "$SIGNS" --init "$WORK/$name" \
      --out "$OUT/$name" --minutes "$P2" --lr 3e-4 --warmup 200 "$@" >> "$OUT/$name.log" 2>&1
  echo "$name exit $?" >> "$OUT/$name.log"
}
train d192 --d 192 --ff 768 --enc-layers 4 --dec-layers 2 &
train d256e4 --d 256 --ff 1024 --enc-layers 4 --dec-layers 2 &
train d256e6 --d 256 --ff 1024 --enc-layers 6 --dec-layers 2 &
wait
tail -n 2 "$OUT"/*.log

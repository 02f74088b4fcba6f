#!/bin/bash
# Translator 3.3 candidates: a released translator's weights (out of the store, dequantized by
# calibration/training/translator_weights.py) trained on with PyTorch, three schedules side by
# side. On a lent GPU about 8 min (the three at once); on the CPU it runs too, far slower.
#
#   python calibration/training/translator_weights.py models/translator/3.2.0 runs/store-3.2.0
#   python scripts/train_translator.py --prepare --mix full --tokenizer \
#       models/translator/3.2.0/translator.spm.model --data data/translator7-full
#   python scripts/train_translator.py --prepare --mix signs --tokenizer \
#       models/translator/3.2.0/translator.spm.model --data data/translator7-signs
#   scripts/continue_translator_gpu.sh      # -> $OUT/{signs,full_signs,gentle}/keras_weights.npz
#
# The three (the minutes are wall time; the learning rate decays over them):
#   signs       the sign mix, 7.5 min, lr 2e-4
#   full_signs  the full mix 4.5 min (lr 3e-4), then the sign mix 3 min (lr 1.5e-4)
#   gentle      the sign mix, 4 min, lr 1e-4
# Then, per candidate: scripts/train_translator.py --import-weights $OUT/NAME --run-dir
# runs/translator7-NAME --data data/translator7-signs; calibration/package_translator2.py
# measures them side by side and writes the chosen one into the store.
set -u
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
INIT=${INIT:-runs/store-3.2.0}
FULL=${FULL:-data/translator7-full/arrays.npz}
SIGNS=${SIGNS:-data/translator7-signs/arrays.npz}
OUT=${OUT:-runs/gpu_translator7}
SCALE=${SCALE:-1}             # multiplies every phase's minutes (a quick check: SCALE=0.02)
ARCH="--d 256 --ff 1024 --heads 4 --enc-layers 6 --dec-layers 2 --batch 512"
mkdir -p "$OUT/phase1"
minutes() { $PYTHON -c "print($1 * $SCALE)"; }
phase() {   # name data init out minutes lr warmup
  $PYTHON calibration/training/translator_torch.py $ARCH --data "$2" --init "$3" --out "$4" \
      --minutes "$(minutes "$5")" --lr "$6" --warmup "$7" >> "$OUT/$1.log" 2>&1
}
{ phase signs "$SIGNS" "$INIT" "$OUT/signs" 7.5 2e-4 300
  echo "signs exit $?" >> "$OUT/signs.log"; } &
{ phase full_signs "$FULL" "$INIT" "$OUT/phase1/full_signs" 4.5 3e-4 300 &&
  phase full_signs "$SIGNS" "$OUT/phase1/full_signs" "$OUT/full_signs" 3 1.5e-4 100
  echo "full_signs exit $?" >> "$OUT/full_signs.log"; } &
{ phase gentle "$SIGNS" "$INIT" "$OUT/gentle" 4 1e-4 200
  echo "gentle exit $?" >> "$OUT/gentle.log"; } &
wait
tail -n 3 "$OUT"/*.log
# exit 1 unless every schedule finished
for name in signs full_signs gentle; do grep -q "^$name exit 0$" "$OUT/$name.log" || exit 1; done

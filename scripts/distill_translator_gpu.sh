#!/bin/bash
# Translator candidates by sequence-level distillation, on a lent GPU (about 9 min; on the CPU
# it runs too, far slower: SCALE=0.01 is a quick check of the whole route).
#
#   python scripts/train_translator.py --prepare --mix full --tokenizer \
#       models/translator/3.2.0/translator.spm.model --data data/translator11-full
#   python scripts/train_translator.py --prepare --mix signs --tokenizer \
#       models/translator/3.2.0/translator.spm.model --data data/translator11-signs
#   INIT=runs/gpu_translator10/full_signs scripts/distill_translator_gpu.sh
#
# 1. A teacher five times the glasses' model (d 512, 6 + 6 layers) learns the full mix from
#    scratch (TEACHER_MIN minutes).
# 2. It reads every distinct source of both mixes (calibration/training/translator_distill.py);
#    each mix is written again with its translations beside the references.
# 3. Three students start from INIT (the released model's float weights) side by side:
#      kd_full_signs  distilled full mix, then distilled sign mix
#      kd_signs       distilled sign mix
#      control        the plain sign mix on kd_signs' schedule (what the extra training alone does)
# Then, per student: scripts/train_translator.py --import-weights $OUT/NAME --run-dir
# runs/translator14-NAME --data data/translator11-signs; calibration/package_translator2.py
# measures them beside INIT's run and writes the chosen one into the store.
set -u
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
INIT=${INIT:-runs/gpu_translator10/full_signs}
FULL=${FULL:-data/translator11-full/arrays.npz}
SIGNS=${SIGNS:-data/translator11-signs/arrays.npz}
OUT=${OUT:-runs/gpu_translator14}
SCALE=${SCALE:-1}             # multiplies every phase's minutes
LIMIT=${LIMIT:-0}             # distinct sources the teacher reads (0: all)
TEACHER_MIN=${TEACHER_MIN:-4}
STUDENT="--d 256 --ff 1024 --heads 4 --enc-layers 6 --dec-layers 2 --batch 512"
TEACHER="--d 512 --ff 2048 --heads 8 --enc-layers 6 --dec-layers 6 --dropout 0.2 --batch 1024"
TRAIN=calibration/training/translator_torch.py
DISTILL=calibration/training/translator_distill.py
mkdir -p "$OUT/phase1"
minutes() { $PYTHON -c "print($1 * $SCALE)"; }
student() {   # log data init out minutes lr warmup
  $PYTHON $TRAIN $STUDENT --data "$2" --init "$3" --out "$4" --minutes "$(minutes "$5")" \
      --lr "$6" --warmup "$7" >> "$OUT/$1.log" 2>&1
}
$PYTHON $TRAIN $TEACHER --data "$FULL" --out "$OUT/teacher" --lr 8e-4 --warmup 600 \
    --minutes "$(minutes "$TEACHER_MIN")" > "$OUT/teacher.log" 2>&1 || { tail "$OUT/teacher.log"; exit 1; }
tail -n 2 "$OUT/teacher.log"
for mix in full signs; do
  data=$FULL; [ $mix = signs ] && data=$SIGNS
  $PYTHON $DISTILL --teacher "$OUT/teacher" --data "$data" --out "$OUT/distilled_$mix" \
      --compare "$INIT" --limit "$LIMIT" > "$OUT/distill_$mix.log" 2>&1 &
done
wait
cat "$OUT"/distill_*.log
for mix in full signs; do [ -f "$OUT/distilled_$mix/arrays.npz" ] || exit 1; done
{ student kd_full_signs "$OUT/distilled_full/arrays.npz" "$INIT" "$OUT/phase1/kd_full_signs" 1.8 3e-4 300 &&
  student kd_full_signs "$OUT/distilled_signs/arrays.npz" "$OUT/phase1/kd_full_signs" \
      "$OUT/kd_full_signs" 1.2 1.5e-4 100
  echo "kd_full_signs exit $?" >> "$OUT/kd_full_signs.log"; } &
{ student kd_signs "$OUT/distilled_signs/arrays.npz" "$INIT" "$OUT/kd_signs" 3 2e-4 300
  echo "kd_signs exit $?" >> "$OUT/kd_signs.log"; } &
{ student control "$SIGNS" "$INIT" "$OUT/control" 3 2e-4 300
  echo "control exit $?" >> "$OUT/control.log"; } &
wait
tail -n 3 "$OUT"/kd_*.log "$OUT"/control.log
for name in kd_full_signs kd_signs control; do grep -q "^$name exit 0$" "$OUT/$name.log" || exit 1; done

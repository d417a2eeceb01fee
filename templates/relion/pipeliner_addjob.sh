#!/usr/bin/env bash
# Add locband as a RELION External job from the command line, then run it.
# RELION 3.1 syntax (4.0 and 5.0 accept the same --addJob/--addJobOptions/--RunJobs).
# Run from the RELION project folder (where default_pipeline.star is). Override any setting
# through the environment, e.g.
#   HALF1=Refine3D/job010/run_half1_class001_unfil.mrc MASK=MaskCreate/job011/mask.mrc THREADS=8 \
#       bash /path/to/locband/templates/relion/pipeliner_addjob.sh
#
# --addJobOptions rules (RelionJob::setOption): exactly one blank on each side of "==", none after ";".
set -euo pipefail

LOCBAND_EXE="${LOCBAND_EXE:-locband relion-external}"   # or the path of wrappers/locband-relion-external
HALF1="${HALF1:-Refine3D/job010/run_half1_class001_unfil.mrc}"  # half 2 is found by name
MASK="${MASK:-MaskCreate/job011/mask.mrc}"
THREADS="${THREADS:-4}"
CRITERION="${CRITERION:-0.143}"
NOISE_THRESHOLD="${NOISE_THRESHOLD:-1}"
APPLY_MASK="${APPLY_MASK:-no}"
# yes: also the interpretation map denoised.mrc (for model building and viewing, never a reference)
INTERPRETATION="${INTERPRETATION:-no}"
SEC_WAIT_AFTER="${SEC_WAIT_AFTER:-10}"

# The new job gets the pipeline's job counter as its number.
counter=$(awk '$1 == "_rlnPipeLineJobCounter" {print $2; exit}' default_pipeline.star)
job=$(printf 'External/job%03d/' "$counter")

relion_pipeliner --addJob External --addJobOptions "fn_exe == ${LOCBAND_EXE};in_3dref == ${HALF1};in_mask == ${MASK};param1_label == criterion;param1_value == ${CRITERION};param2_label == noise_threshold;param2_value == ${NOISE_THRESHOLD};param3_label == apply_mask;param3_value == ${APPLY_MASK};param4_label == interpretation;param4_value == ${INTERPRETATION};nr_threads == ${THREADS};"

relion_pipeliner --RunJobs "$job" --sec_wait_after "$SEC_WAIT_AFTER"
if [ -e "${job}RELION_JOB_EXIT_SUCCESS" ]; then
    echo "locband External job $job finished; its outputs are nodes in default_pipeline.star"
else
    echo "locband External job $job did not finish successfully: see ${job}run.err" >&2
    exit 1
fi

#!/bin/bash
# RELION queue-submission template for SLURM (RELION's qsub-template style: RELION replaces the
# XXX...XXX words and submits the result with the job's "Queue submit command", here sbatch).
# Use it as the External job's "Standard submission script" (qsubscript) with "Submit to queue?" = Yes.
#
# One task with as many CPUs as the job's "Number of threads": RELION passes the same number to
# locband as --j, and locband uses it for its FFT threads. OMP_NUM_THREADS is set to match so
# that numpy/scipy's own thread pools do not oversubscribe the node.
#SBATCH --job-name=XXXnameXXX
#SBATCH --partition=XXXqueueXXX
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --cpus-per-task=XXXthreadsXXX
#SBATCH --nodes=1
#SBATCH --output=XXXoutfileXXX
#SBATCH --error=XXXerrfileXXX
#SBATCH --open-mode=append

export OMP_NUM_THREADS=XXXthreadsXXX
export OPENBLAS_NUM_THREADS=XXXthreadsXXX
export MKL_NUM_THREADS=XXXthreadsXXX

XXXcommandXXX

#!/usr/bin/env bash
# Runs one Blender version's pytest suite; if Blender itself crashes (the process dies of a signal,
# e.g. SIGSEGV inside bpy), says so loudly and runs the suite once more. A failing test is never
# retried: only a crash of the interpreter is. An intermittent segfault inside bpy's C code has been
# seen once every few full runs (see the note in README, "Tests"); a second crash fails the run.
set -u
"$@"
rc=$?
if [ "$rc" -ge 128 ]; then
  echo "*** run_blender_suite: the suite's process died of signal $((rc - 128)) (a crash inside Blender, not a test failure); running it once more" >&2
  "$@"
  rc=$?
fi
exit "$rc"

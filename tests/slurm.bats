#!/usr/bin/env bats
# examples/slurm on a real Slurm cluster of one node, started here from Debian's slurm-wlm and munge (make
# test-deps): munged as the munge user with a key from mungekey, then slurmctld and slurmd as root, with their
# ports, state, spool, logs and socket under this run's temporary directory, so that runs beside each other do
# not meet. The example's job array of 4 tasks must give, after lx-merge, the score and the submission file of
# one process, byte for byte. Everything started is stopped by its process id in teardown_file, also after a
# failure. Only a user who is not root skips (the daemons need root); anything else that keeps the cluster from
# starting is a failure that says why.

load helpers

# A free TCP port and the one after it, from a range Slurm's own defaults (6817, 6818) and the ephemeral
# ports stay out of.
free_ports() {
	$PY - << 'EOF'
import random, socket
for _ in range(50):
    p = random.randrange(20000, 30000)
    try:
        for q in (p, p + 1):
            s = socket.socket(); s.bind(("", q)); s.close()
    except OSError:
        continue
    print(p)
    break
EOF
}

start_cluster() {
	local d=$SLURM_DIR h p i
	for c in mungekey munged slurmctld slurmd sbatch sinfo setpriv; do
		command -v "$c" > /dev/null || PATH=$PATH:/usr/sbin command -v "$c" > /dev/null ||
			{ echo "cannot start Slurm: $c is not installed (make test-deps installs slurm-wlm and munge)"; return 1; }
	done
	export PATH=$PATH:/usr/sbin
	id munge > /dev/null 2>&1 || { echo "cannot start Slurm: no user munge (Debian's munge package makes it)"; return 1; }
	h=$(hostname -s)
	p=$(free_ports)
	[ -n "$p" ] || { echo "cannot start Slurm: no two free ports found between 20000 and 30000"; return 1; }
	mkdir -p "$d/munge" "$d/state" "$d/spool" "$d/log"
	chmod 755 "$d" "$d/munge" # munged wants its socket's directory open to all, and the key its own
	mungekey -c -k "$d/munge/munge.key" || { echo "cannot start Slurm: mungekey -c failed"; return 1; }
	chown -R munge:munge "$d/munge"
	chmod 600 "$d/munge/munge.key"
	setpriv --reuid=munge --regid=munge --init-groups munged -F --socket="$d/munge/socket" \
		--key-file="$d/munge/munge.key" --pid-file="$d/munge/munged.pid" --log-file="$d/munge/munged.log" \
		--seed-file="$d/munge/seed" > "$d/log/munged.out" 2>&1 3>&- &
	echo $! >> "$d/pids"
	cat > "$d/slurm.conf" << EOF
ClusterName=lxtest
SlurmctldHost=$h
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$p
SlurmdPort=$((p + 1))
AuthType=auth/munge
AuthInfo=socket=$d/munge/socket
CredType=cred/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# sbatch --wait polls more often when finished jobs are forgotten sooner (it waits at most half of this)
MinJobAge=6
NodeName=$h CPUs=2 State=UNKNOWN
PartitionName=lx Nodes=$h Default=YES MaxTime=INFINITE State=UP
EOF
	export SLURM_CONF=$d/slurm.conf
	for i in $(seq 50); do [ -S "$d/munge/socket" ] && break; sleep 0.1; done
	[ -S "$d/munge/socket" ] || { echo "cannot start Slurm: munged did not start:"; cat "$d/log/munged.out" "$d/munge/munged.log"; return 1; }
	slurmctld -D -i -f "$SLURM_CONF" > "$d/log/slurmctld.out" 2>&1 3>&- &
	echo $! >> "$d/pids"
	slurmd -D -f "$SLURM_CONF" > "$d/log/slurmd.out" 2>&1 3>&- &
	echo $! >> "$d/pids"
	for i in $(seq 100); do
		[ "$(sinfo -h -o %T 2> /dev/null)" = idle ] && return 0
		sleep 0.2
	done
	echo "cannot start Slurm: the node did not come up idle within 20 s (sinfo: $(sinfo -h -o %T 2>&1)):"
	tail -n 5 "$d"/log/*
	return 1
}

setup_file() {
	[ "$(id -u)" -eq 0 ] || return 0 # each test skips, saying why
	# not under bats' own temporary directory, which the munge user cannot enter
	SLURM_DIR=$(mktemp -d /tmp/lx-slurm.XXXXXX)
	export SLURM_DIR
	echo "$SLURM_DIR" > "$BATS_FILE_TMPDIR/slurm-dir"
	start_cluster >&3 2>&1 || { echo "# see $SLURM_DIR" >&3; return 1; }
}

teardown_file() {
	local d=${SLURM_DIR:-}
	[ -n "$d" ] && [ -f "$d/pids" ] || return 0
	[ -z "${SLURM_CONF:-}" ] || scancel --full --user=root > /dev/null 2>&1 || true
	# slurmd, slurmctld, then munged: the last started first
	tac "$d/pids" | while read -r pid; do
		kill "$pid" 2> /dev/null || true
		for i in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
	done
	rm -rf "$d"
}

setup() {
	[ "$(id -u)" -eq 0 ] || skip "starting munged, slurmctld and slurmd needs root (CI runs as root)"
	T="$BATS_TEST_TMPDIR"
	M="$TOP/models/demo"
	cd "$T"
	cp "$FIX/train2014_obj36_sample.tsv" feats.tsv # its index is written beside it, here
}

@test "the example's job array of 4 tasks gives one process's score and submission file, byte for byte" {
	"$BIN/lx-tokenize" -m "$M" --jsonl --max-length 20 "$FIX/questions.jsonl" | "$BIN/lx-featpack" --join feats.tsv |
		"$BIN/lx-encode" -m "$M" | "$BIN/lx-head" -m "$M" --submit vqa --score-file one.score > one.json
	run make --no-print-directory -f "$TOP/examples/slurm/Makefile" N=4 BIN="$BIN" MODEL="$M" \
		QUESTIONS="$FIX/questions.jsonl" FEATS=feats.tsv OUT=out
	echo "$output"
	[ "$status" -eq 0 ]
	# four tasks ran, one shard each; the README's score of the demo model on the sample questions
	[ "$(ls out/eval/shard-*.jsonl | wc -l)" -eq 4 ]
	[ "$(ls out/eval/slurm-*.log | wc -l)" -eq 4 ]
	[ "${lines[-1]}" = '{"score": 0.4, "questions": 20}' ]
	cmp one.json out/submission.json
	cmp one.score out/score.json
	[ -f feats.tsv.lxidx ]
}

@test "the example's feature extraction over 4 tasks gives the feature stream of one lx-detect run" {
	ls "$FIX"/frcnn-tiny/images/* > images.txt
	"$BIN/lx-detect" -m "$FIX/frcnn-tiny" < images.txt > one.mp
	run make --no-print-directory -f "$TOP/examples/slurm/Makefile" features N=4 BIN="$BIN" \
		DETECTOR="$FIX/frcnn-tiny" IMAGES=images.txt OUT=out
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(ls out/detect/shard-*.mp | wc -l)" -eq 4 ]
	cmp one.mp out/feats.mp
	[ -f out/feats.mp.lxidx ]
}

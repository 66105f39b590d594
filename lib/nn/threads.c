/*
 * threads.c - liblx's own threads (lx_par_run, ops.h): the caller and lx_set_threads(n) - 1 workers, which
 * wait for work asleep on a condition variable, never spinning. The matrix libraries are kept to one thread
 * each (their waiting threads spin: OpenBLAS in sched_yield, OpenMP's for thousands of iterations after every
 * parallel region, and both read how long only from the environment at load time); lx_op_matmul splits a
 * large product into parts here instead, one library call per part.
 */
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cblas.h>
#ifdef LX_DNNL
#include <omp.h>
#endif

#include "nn/ops.h"

#define MAX_THREADS 256

/* Set on the pool's threads while they run a job's parts: a part that asks for lx_par_run runs it inline. */
static __thread int in_job;

static struct {
	pthread_mutex_t job;   /* one job at a time, whichever thread asks */
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	int n;                 /* threads that share work: the caller and n - 1 workers; 0 before lx_set_threads */
	int started;           /* workers running */
	unsigned long gen;     /* bumped for every job */
	void (*fn)(void *, int, int);
	void *arg;
	int parts, next, left; /* the job's parts, the next one to take, those not yet finished */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
          0, 0, 0, NULL, NULL, 0, 0, 0};

/* The matrix libraries compute on the thread that calls them, alone. */
static void libraries_single(void)
{
	openblas_set_num_threads(1);
#ifdef LX_DNNL
	omp_set_num_threads(1);
#endif
}

/* Takes and runs parts of the current job until none is left; called and returns with pool.mu held. */
static void work(void)
{
	while (pool.next < pool.parts) {
		int part = pool.next++;
		pthread_mutex_unlock(&pool.mu);
		pool.fn(pool.arg, part, pool.parts);
		pthread_mutex_lock(&pool.mu);
		if (--pool.left == 0)
			pthread_cond_signal(&pool.done);
	}
}

static void *worker(void *unused)
{
	unsigned long seen = 0;

	(void)unused;
	libraries_single();
	in_job = 1;
	pthread_mutex_lock(&pool.mu);
	for (;;) {
		while (pool.gen == seen)
			pthread_cond_wait(&pool.go, &pool.mu);
		seen = pool.gen;
		work();
	}
	return NULL;
}

void lx_set_threads(int n)
{
	pthread_attr_t at;
	pthread_t t;
	sigset_t all, old;

	n = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
	libraries_single();
	pthread_mutex_lock(&pool.mu);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	/* workers start with every signal blocked, so that signals go to the program's own threads */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (pool.started < n - 1 && pthread_create(&t, &at, worker, NULL) == 0)
		pool.started++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&at);
	/* more workers than wanted may be running from an earlier call: they only take parts there are */
	pool.n = pool.started + 1 < n ? pool.started + 1 : n;
	pthread_mutex_unlock(&pool.mu);
}

int lx_threads(void)
{
	if (!pool.n) {
		/* by default, as many as the machine has cores, as OpenBLAS and OpenMP would take */
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		lx_set_threads(c > 0 ? (int)c : 1);
	}
	return pool.n;
}

void lx_par_run(int parts, void (*fn)(void *arg, int part, int parts), void *arg)
{
	int i;

	if (parts <= 1 || in_job || lx_threads() <= 1) {
		for (i = 0; i < parts; i++)
			fn(arg, i, parts);
		return;
	}
	pthread_mutex_lock(&pool.job);
	in_job = 1;
	pthread_mutex_lock(&pool.mu);
	pool.fn = fn;
	pool.arg = arg;
	pool.parts = parts;
	pool.next = 0;
	pool.left = parts;
	pool.gen++;
	pthread_cond_broadcast(&pool.go);
	work();
	while (pool.left > 0)
		pthread_cond_wait(&pool.done, &pool.mu);
	pthread_mutex_unlock(&pool.mu);
	in_job = 0;
	pthread_mutex_unlock(&pool.job);
}

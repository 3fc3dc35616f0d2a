/* LD_PRELOAD shim for the clock-skew tests: shifts this process's wall clock (CLOCK_REALTIME,
 * gettimeofday, time) by $CLOCK_SHIFT_SECONDS and leaves every other clock alone, so sleeps and
 * timed waits (which Python times on CLOCK_MONOTONIC) behave. libfaketime 0.9.10 cannot do this
 * under Python 3.11: with its monotonic clock faked, timed waits last the offset; without, its
 * clock_nanosleep fails with EINVAL. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long shift_seconds(void) {
    const char *text = getenv("CLOCK_SHIFT_SECONDS");
    return text ? atol(text) : 0;
}

static int is_wall_clock(clockid_t clock) {
    return clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE;
}

int clock_gettime(clockid_t clock, struct timespec *now) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int status = real(clock, now);
    if (status == 0 && is_wall_clock(clock)) now->tv_sec += shift_seconds();
    return status;
}

int gettimeofday(struct timeval *now, void *zone) {
    static int (*real)(struct timeval *, void *);
    if (!real) real = (int (*)(struct timeval *, void *))dlsym(RTLD_NEXT, "gettimeofday");
    int status = real(now, zone);
    if (status == 0 && now) now->tv_sec += shift_seconds();
    return status;
}

time_t time(time_t *out) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (out) *out = now.tv_sec;
    return now.tv_sec;
}

/*
 * msgid.c - generating, checking and ordering message ids (see msgid.h).
 *
 * What fills the fields:
 *  - time: the clock's seconds (clock_now_tv(), so the fake clock of test
 *    builds applies).
 *  - pid: getpid() in both forms, as Exim does, so operators and tools
 *    that decode the pid keep working. Linux pids stay below 2^22, which
 *    fits the classic 6-digit field (62^6 is about 5.7e10) and the current
 *    11-digit one.
 *  - sub-second: microseconds in the current form. The classic form has
 *    two digits, 3844 values, and Exim uses at most 2000 of them. We use
 *    all 3844 as units of 1/3844 s (about 260 us), so one process can
 *    create 3844 ids per second before the next rule applies.
 *
 * Uniqueness: each process keeps the last (time, sub-second) pair it
 * issued, per form, as one tick count since the epoch. A new id takes
 * the clock's tick count, or the last one plus one when the clock has
 * not moved past it (ids requested faster than the sub-second field
 * resolves, or a clock step backwards). The sub-second field carries
 * into the seconds, so during such a burst the id's time runs ahead of
 * the clock. 100,000 classic ids created at once end about 26 s in the
 * future, and as many current ids 0.1 s. Once the burst ends, the clock
 * catches up and ids follow it again. Ids of different processes
 * differ in the pid field; msgid_wait_tick() covers a pid reused after
 * its process exits.
 *
 * The last tick count is an atomic updated by compare-and-swap, so
 * threads (spool workers) may create ids at the same time, and a child
 * created by fork() cannot inherit a held lock.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "msgid.h"
#include "util.h"

#define BASE62_DIGITS \
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

/* Digits per field: time, pid, sub-second. */
#define TIME_DIGITS		6
#define CURRENT_PID_DIGITS	11
#define CURRENT_SUB_DIGITS	4
#define CLASSIC_PID_DIGITS	6
#define CLASSIC_SUB_DIGITS	2

/* Last tick count issued, per form; ticks are seconds * ticks per second
 * + sub-second. Indexed by enum msgid_format. */
static _Atomic uint64_t last_ticks[2];

static int
base62_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 36;
	return -1;
}

/* Writes the low-order width base-62 digits of value, big-endian. */
static void
base62_encode(uint64_t value, int width, char *out)
{
	for (int i = width - 1; i >= 0; i--) {
		out[i] = BASE62_DIGITS[value % 62];
		value /= 62;
	}
}

/* Decodes width digits; the caller has checked that they are base 62.
 * 11 digits can exceed 2^64, so the result wraps like the encoding. */
static uint64_t
base62_decode(const char *s, int width)
{
	uint64_t value = 0;

	for (int i = 0; i < width; i++)
		value = value * 62 + (uint64_t)base62_value(s[i]);
	return value;
}

/* True if s[0..width) are all base-62 digits; stops at a NUL. */
static bool
base62_run(const char *s, int width)
{
	for (int i = 0; i < width; i++)
		if (base62_value(s[i]) < 0)
			return false;
	return true;
}

static unsigned
ticks_per_second(enum msgid_format format)
{
	return format == MSGID_FORMAT_CLASSIC ?
	    MSGID_CLASSIC_TICKS : MSGID_CURRENT_TICKS;
}

/* The clock as a tick count of the given form. */
static uint64_t
clock_ticks(enum msgid_format format)
{
	struct timeval tv;
	uint64_t per_second = ticks_per_second(format);

	clock_now_tv(&tv);
	if (tv.tv_sec < 0)	/* a clock before 1970 is broken; use 0 */
		return 0;
	return (uint64_t)tv.tv_sec * per_second +
	    (uint64_t)tv.tv_usec * per_second / 1000000;
}

void
msgid_new(enum msgid_format format, char buf[MSGID_SIZE])
{
	_Atomic uint64_t *last = &last_ticks[format == MSGID_FORMAT_CLASSIC];
	uint64_t now = clock_ticks(format);
	uint64_t previous = atomic_load(last);
	uint64_t next;
	struct msgid_parts parts;

	do {
		next = now > previous ? now : previous + 1;
	} while (!atomic_compare_exchange_weak(last, &previous, next));

	parts.time = (time_t)(next / ticks_per_second(format));
	parts.subsecond = (uint32_t)(next % ticks_per_second(format));
	parts.pid = (uint64_t)getpid();
	msgid_encode(format, &parts, buf);
}

void
msgid_wait_tick(void)
{
	static const enum msgid_format formats[] = {
		MSGID_FORMAT_CURRENT, MSGID_FORMAT_CLASSIC,
	};

	for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
		enum msgid_format format = formats[i];
		uint64_t last = atomic_load(&last_ticks[format ==
		    MSGID_FORMAT_CLASSIC]);
		uint64_t now;

		while ((now = clock_ticks(format)) <= last) {
			uint64_t usec = (last - now + 1) * 1000000 /
			    ticks_per_second(format) + 1;
			struct timespec ts = {
				.tv_sec = (time_t)(usec / 1000000),
				.tv_nsec = (long)(usec % 1000000) * 1000,
			};

			while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
				continue;
		}
	}
}

size_t
msgid_prefix_len(const char *s)
{
	if (!base62_run(s, TIME_DIGITS) || s[TIME_DIGITS] != '-')
		return 0;
	s += TIME_DIGITS + 1;

	/* The forms differ at the 7th character after the first dash: a
	 * dash in the classic form, a digit in the current one. */
	if (base62_run(s, CURRENT_PID_DIGITS) &&
	    s[CURRENT_PID_DIGITS] == '-' &&
	    base62_run(s + CURRENT_PID_DIGITS + 1, CURRENT_SUB_DIGITS))
		return MSGID_LEN_CURRENT;
	if (base62_run(s, CLASSIC_PID_DIGITS) &&
	    s[CLASSIC_PID_DIGITS] == '-' &&
	    base62_run(s + CLASSIC_PID_DIGITS + 1, CLASSIC_SUB_DIGITS))
		return MSGID_LEN_CLASSIC;
	return 0;
}

bool
msgid_valid(const char *s, size_t len)
{
	char copy[MSGID_SIZE];

	if (len != MSGID_LEN_CURRENT && len != MSGID_LEN_CLASSIC)
		return false;
	/* s need not be terminated, and a shorter prefix must not match. */
	memcpy(copy, s, len);
	copy[len] = '\0';
	return msgid_prefix_len(copy) == len;
}

void
msgid_encode(enum msgid_format format, const struct msgid_parts *parts,
    char buf[MSGID_SIZE])
{
	int pid_digits = format == MSGID_FORMAT_CLASSIC ?
	    CLASSIC_PID_DIGITS : CURRENT_PID_DIGITS;
	int sub_digits = format == MSGID_FORMAT_CLASSIC ?
	    CLASSIC_SUB_DIGITS : CURRENT_SUB_DIGITS;
	char *p = buf;

	base62_encode(parts->time < 0 ? 0 : (uint64_t)parts->time,
	    TIME_DIGITS, p);
	p += TIME_DIGITS;
	*p++ = '-';
	base62_encode(parts->pid, pid_digits, p);
	p += pid_digits;
	*p++ = '-';
	base62_encode(parts->subsecond, sub_digits, p);
	p += sub_digits;
	*p = '\0';
}

int
msgid_decode(const char *s, enum msgid_format *format,
    struct msgid_parts *parts)
{
	size_t len = msgid_prefix_len(s);
	int pid_digits;

	if (len == 0)
		return -1;
	*format = len == MSGID_LEN_CLASSIC ?
	    MSGID_FORMAT_CLASSIC : MSGID_FORMAT_CURRENT;
	pid_digits = len == MSGID_LEN_CLASSIC ?
	    CLASSIC_PID_DIGITS : CURRENT_PID_DIGITS;

	parts->time = (time_t)base62_decode(s, TIME_DIGITS);
	parts->pid = base62_decode(s + TIME_DIGITS + 1, pid_digits);
	parts->subsecond = (uint32_t)base62_decode(s + TIME_DIGITS + 1 +
	    pid_digits + 1, len == MSGID_LEN_CLASSIC ?
	    CLASSIC_SUB_DIGITS : CURRENT_SUB_DIGITS);
	return 0;
}

time_t
msgid_time(const char *id)
{
	enum msgid_format format;
	struct msgid_parts parts;

	if (msgid_decode(id, &format, &parts) != 0)
		return -1;
	return parts.time;
}

/*
 * The sub-second field in microseconds. Exim 4.96 wrote classic ids in
 * 5 ms units and documents 1/2000 s, so between an Exim classic id and
 * any other id of the same second the order is only approximate. Within
 * one form, and for ids sluice created, it follows creation order.
 */
static uint64_t
subsecond_usec(enum msgid_format format, uint32_t subsecond)
{
	if (format == MSGID_FORMAT_CLASSIC)
		return (uint64_t)subsecond * 1000000 / MSGID_CLASSIC_TICKS;
	return subsecond;
}

int
msgid_compare(const char *a, const char *b)
{
	enum msgid_format format_a, format_b;
	struct msgid_parts parts_a, parts_b;
	bool valid_a = msgid_decode(a, &format_a, &parts_a) == 0;
	bool valid_b = msgid_decode(b, &format_b, &parts_b) == 0;
	uint64_t usec_a, usec_b;

	if (!valid_a || !valid_b) {
		if (valid_a != valid_b)
			return valid_a ? -1 : 1;
		return strcmp(a, b);
	}
	if (parts_a.time != parts_b.time)
		return parts_a.time < parts_b.time ? -1 : 1;
	if (format_a == format_b) {
		if (parts_a.subsecond != parts_b.subsecond)
			return parts_a.subsecond < parts_b.subsecond ? -1 : 1;
		return 0;
	}
	usec_a = subsecond_usec(format_a, parts_a.subsecond);
	usec_b = subsecond_usec(format_b, parts_b.subsecond);
	if (usec_a != usec_b)
		return usec_a < usec_b ? -1 : 1;
	return 0;
}

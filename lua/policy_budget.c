/*
 * policy_budget.c - the time budget of policy code, with the JIT on.
 *
 * LuaJIT skips count hooks inside compiled traces unless it was built
 * with LUAJIT_ENABLE_CHECKHOOK, which Debian's packages are not, so a
 * count hook alone never stops a compiled "while true do end". The
 * budget therefore works in two stages, driven by a watchdog thread
 * that looks at the running call every POLICY_BUDGET_TICK_USEC and
 * sends the loop thread a signal once the call is over its limit:
 *
 *  1. The first signal installs a count hook with lua_sethook(), as
 *     luajit.c does on SIGINT. Interpreted code, and C functions as
 *     soon as they return, then raise "time budget exceeded" at the
 *     next instruction: an ordinary Lua error, and the state lives on.
 *  2. Each later signal looks at where the thread was interrupted. In
 *     compiled code (an anonymous executable mapping, where LuaJIT puts
 *     its machine code) or inside LuaJIT's own C code (a runaway string
 *     pattern), no hook can ever run, so the handler jumps back to
 *     policy_budget_call() with siglongjmp(). Neither place holds a
 *     lock or a resource of sluice's. The state is then inconsistent:
 *     the caller abandons it, freeing every block through the
 *     allocator's own list, and loads the policy again.
 *     Anywhere else (libc, sluice's own functions) the handler does
 *     nothing and the next tick tries again, since a lock may be held.
 *
 * A call with the JIT on thus pays for two atomic stores and a
 * sigsetjmp() without saving the signal mask. bench/policy_calls.c
 * measures it against running with the JIT off under a count hook.
 *
 * NOTE: the machine code of an abandoned state stays mapped (one 64 KiB
 * area per state with traces, LuaJIT's sizemcode), because LuaJIT keeps
 * no public record of its areas. mainlog counts abandoned states.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "clock.h"
#include "policy_private.h"
#include "util.h"

/* How often the watchdog looks at the running call, which is also how
 * far past its limit a call may run before the first signal. */
#define POLICY_BUDGET_TICK_USEC	10000
/* Offset of the budget's signal from SIGRTMIN; no other part of sluice
 * uses real-time signals. */
#define POLICY_BUDGET_SIGNAL_OFFSET	4

/* Shared with the watchdog thread. */
static struct {
	pthread_t thread;
	bool running;
	pid_t loop_tid;
	int signo;
	_Atomic uint64_t call_seq;	/* odd while a call runs */
	_Atomic uint64_t deadline_usec;	/* on clock_monotonic_usec() */
	_Atomic bool stop;
} watchdog;

/* Shared with the signal handler, on the loop thread. */
static lua_State *volatile budget_L;
static volatile sig_atomic_t budget_stage;
static sigjmp_buf budget_escape;

/* LuaJIT's executable code when it is a shared library apart from
 * sluice; both 0 otherwise. */
static uintptr_t luajit_text_start, luajit_text_end;

/* Finds the executable segment that contains the address arg. */
static int
policy_budget_phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t address = (uintptr_t)arg;

	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type != PT_LOAD || (ph->p_flags & PF_X) == 0 ||
		    address < start || address >= start + ph->p_memsz)
			continue;
		luajit_text_start = start;
		luajit_text_end = start + ph->p_memsz;
		return 1;
	}
	return 0;
}

/* Finds LuaJIT's code, unless LuaJIT is linked into sluice itself,
 * where the range would cover sluice's functions too. */
static void
policy_budget_find_luajit(void)
{
	Dl_info luajit, self;

	luajit_text_start = luajit_text_end = 0;
	if (dladdr((void *)lua_pcall, &luajit) == 0 ||
	    dladdr((void *)policy_budget_find_luajit, &self) == 0 ||
	    luajit.dli_fbase == self.dli_fbase)
		return;
	/* dl_iterate_phdr() gives segments; the one holding lua_pcall is
	 * LuaJIT's code. */
	dl_iterate_phdr(policy_budget_phdr_cb, (void *)lua_pcall);
}

/* Parses hexadecimal digits at *p, moving *p past them. */
static uintptr_t
policy_budget_hex(const char **p, const char *end)
{
	uintptr_t value = 0;

	for (; *p < end; (*p)++) {
		char c = **p;

		if (c >= '0' && c <= '9')
			value = value * 16 + (uintptr_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			value = value * 16 + (uintptr_t)(c - 'a' + 10);
		else
			break;
	}
	return value;
}

/* True if line, one line of /proc/self/maps, is an anonymous executable
 * mapping holding pc. */
static bool
policy_budget_line_is_code(const char *line, const char *end, uintptr_t pc)
{
	const char *p = line;
	uintptr_t start, stop;
	int fields = 0;

	start = policy_budget_hex(&p, end);
	if (p >= end || *p++ != '-')
		return false;
	stop = policy_budget_hex(&p, end);
	if (pc < start || pc >= stop || end - p < 5 || p[3] != 'x')
		return false;
	/* "r-xp offset dev inode" and then a path for a file mapping. */
	for (; p < end && fields < 5; fields++) {
		while (p < end && *p == ' ')
			p++;
		if (fields == 4)
			break;
		while (p < end && *p != ' ')
			p++;
	}
	return p >= end || *p == '\n';
}

/*
 * True if pc is in an anonymous executable mapping: LuaJIT's machine
 * code, since nothing else in sluice generates code. Reads
 * /proc/self/maps with open() and read() only, which are safe in a
 * signal handler.
 */
static bool
policy_budget_in_compiled_code(uintptr_t pc)
{
	char buf[4096], line[512];
	size_t len = 0;
	bool found = false;
	ssize_t n;
	int fd;

	if ((fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	while (!found && (n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n && !found; i++) {
			if (len < sizeof(line))
				line[len++] = buf[i];
			if (buf[i] != '\n')
				continue;
			found = policy_budget_line_is_code(line, line + len, pc);
			len = 0;
		}
	}
	close(fd);
	return found;
}

/* Raises at every instruction until the call ends, so that a pcall()
 * in the policy cannot catch the error and carry on. */
static void
policy_budget_hook(lua_State *L, lua_Debug *ar)
{
	lua_Debug here;

	if (lua_getstack(L, 0, &here) && lua_getinfo(L, "Sl", &here) &&
	    here.currentline > 0)
		lua_pushfstring(L, "%s:%d: time budget exceeded", here.short_src,
		    here.currentline);
	else
		lua_pushliteral(L, "time budget exceeded");
	lua_error(L);
}

/* The interrupted program counter, or 0 on an unknown architecture. */
static uintptr_t
policy_budget_pc(const ucontext_t *uc)
{
#if defined(__x86_64__)
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
	return (uintptr_t)uc->uc_mcontext.pc;
#else
	/* NOTE: only x86-64 and arm64 are known; elsewhere a compiled loop
	 * is stopped by nothing, since it never runs the hook. */
	return 0;
#endif
}

static void
policy_budget_signal_handler(int signo, siginfo_t *info, void *context)
{
	lua_State *L = budget_L;
	uintptr_t pc;
	int saved = errno;

	if (L == NULL || clock_monotonic_usec() < atomic_load(
	    &watchdog.deadline_usec)) {
		errno = saved;
		return;		/* a late signal for a call that has ended */
	}
	if (budget_stage == 0) {
		budget_stage = 1;
		lua_sethook(L, policy_budget_hook,
		    LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
		errno = saved;
		return;
	}
	pc = policy_budget_pc(context);
	if (pc != 0 && ((pc >= luajit_text_start && pc < luajit_text_end) ||
	    policy_budget_in_compiled_code(pc))) {
		budget_L = NULL;
		errno = saved;
		siglongjmp(budget_escape, 1);
	}
	errno = saved;
}

static void *
policy_budget_watchdog(void *arg)
{
	struct timespec tick = { 0, POLICY_BUDGET_TICK_USEC * 1000 };

	while (!atomic_load(&watchdog.stop)) {
		uint64_t seq;

		nanosleep(&tick, NULL);
		seq = atomic_load(&watchdog.call_seq);
		if ((seq & 1) != 0 && clock_monotonic_usec() >=
		    atomic_load(&watchdog.deadline_usec))
			syscall(SYS_tgkill, getpid(), watchdog.loop_tid,
			    watchdog.signo);
	}
	return NULL;
}

int
policy_budget_start(char **error)
{
	struct sigaction sa;
	int rc;

	if (watchdog.running)
		return 0;
	policy_budget_find_luajit();
	watchdog.signo = SIGRTMIN + POLICY_BUDGET_SIGNAL_OFFSET;
	watchdog.loop_tid = (pid_t)syscall(SYS_gettid);
	atomic_store(&watchdog.stop, false);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = policy_budget_signal_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(watchdog.signo, &sa, NULL) < 0) {
		*error = xasprintf("cannot install the policy budget's signal "
		    "handler: %s", strerror(errno));
		return -1;
	}
	if ((rc = pthread_create(&watchdog.thread, NULL,
	    policy_budget_watchdog, NULL)) != 0) {
		*error = xasprintf("cannot start the policy budget's watchdog "
		    "thread: %s", strerror(rc));
		return -1;
	}
	watchdog.running = true;
	return 0;
}

void
policy_budget_stop(void)
{
	if (!watchdog.running)
		return;
	atomic_store(&watchdog.stop, true);
	pthread_join(watchdog.thread, NULL);
	watchdog.running = false;
	signal(watchdog.signo, SIG_IGN);
}

int
policy_budget_call(struct policy_state *ps, int nargs, int nresults,
    uint64_t limit_usec)
{
	lua_State *L = ps->L;
	int errfunc = lua_gettop(L) - nargs;	/* the function's slot */
	volatile int rc;

	SLUICE_ASSERT(watchdog.running);
	SLUICE_ASSERT(budget_L == NULL);

	/* The error handler goes below the function. The slot it needs
	 * was reserved by the caller's lua_checkstack(). */
	lua_rawgeti(L, LUA_REGISTRYINDEX, ps->traceback_ref);
	lua_insert(L, errfunc);

	budget_stage = 0;
	atomic_store(&watchdog.deadline_usec, clock_monotonic_usec() +
	    limit_usec);
	if (sigsetjmp(budget_escape, 0) != 0) {
		sigset_t set;

		/* Back from the signal handler: its signal is still blocked,
		 * since the mask was not saved. */
		sigemptyset(&set);
		sigaddset(&set, watchdog.signo);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		atomic_fetch_add(&watchdog.call_seq, 1);
		return POLICY_CALL_ABANDONED;
	}
	atomic_fetch_add(&watchdog.call_seq, 1);
	budget_L = L;

	rc = lua_pcall(L, nargs, nresults, errfunc);

	budget_L = NULL;
	atomic_fetch_add(&watchdog.call_seq, 1);
	if (budget_stage != 0)
		lua_sethook(L, NULL, 0, 0);
	lua_remove(L, errfunc);
	return rc;
}

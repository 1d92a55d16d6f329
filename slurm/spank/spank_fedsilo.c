/*****************************************************************************\
 *  spank_fedsilo.c - Slurm SPANK plugin: one federated-learning silo per
 *  task, each task seeing only its own silo's data and state.
 *****************************************************************************
 *  srun --fedsilo-silos=MANIFEST (also sbatch/salloc and #SBATCH) names a
 *  manifest, one silo a line:
 *
 *      # NAME     DATA_DIR            STATE_DIR            ALLOWED
 *      hospital-a /data/a/fmnist      /state/a             alice,@consortium
 *      hospital-b /data/b/fmnist      /state/b             bob,@consortium
 *
 *  ALLOWED is a comma-separated list of user names and @group names; '#'
 *  starts a comment; blank lines are ignored. Task i of a job step (its
 *  global task id) runs silo i in manifest order.
 *
 *  In every job step but the batch and extern steps, each task gets, before
 *  it starts (slurm_spank_task_init_privileged, as root):
 *    - a private mount namespace ('/' made recursively private, so nothing
 *      propagates back to the host);
 *    - its silo's DATA_DIR bind-mounted read-only at data_path, and its
 *      STATE_DIR read-write at state_path;
 *    - an empty, read-only, mode 000 tmpfs over every other silo's DATA_DIR
 *      and STATE_DIR, so those cannot be opened or listed by their paths;
 *    - FEDSILO_SILO=NAME, FEDSILO_DATA_DIR=data_path and
 *      FEDSILO_STATE_DIR=state_path in its environment.
 *  Paths outside the manifest are untouched.
 *
 *  plugstack.conf (the plugin must be "required": Slurm ignores the errors of
 *  an optional plugin, and the tasks would then run without isolation):
 *
 *      required /usr/lib/fedsilo/spank_fedsilo.so \
 *               data_path=/run/fedsilo/data state_path=/run/fedsilo/state
 *
 *    data_path=PATH   where a task sees its DATA_DIR   (/run/fedsilo/data)
 *    state_path=PATH  where a task sees its STATE_DIR  (/run/fedsilo/state)
 *    srun_check=no    skip the early check in srun, for hosts where srun runs
 *                     that do not see the silo directories (default: yes)
 *  The mount points are created (as root, mode 0755) when missing.
 *
 *  Checks. A step fails before any task's program starts, with one message
 *  naming what is wrong, when: the manifest cannot be read or is malformed
 *  (file:line), names a missing or unreachable directory, names a silo twice,
 *  lets silos share directories, the step's user may not run one of the
 *  silos, or the step's task count differs from the silo count.
 *    - srun checks first (local context) and refuses to launch: its message
 *      is the clearest, but srun runs as the user and can be bypassed.
 *    - slurmstepd checks again (remote context, authoritative) in
 *      slurm_spank_user_init, with the user's credentials (Slurm has already
 *      dropped to the user's uid and groups there), so the plugin never
 *      mounts a directory the user could not reach by their own rights, nor
 *      reads a manifest they could not read. The directories are opened
 *      there (O_PATH), and each bind mount is checked to show the directory
 *      that was opened, so a path swapped after the check cannot redirect
 *      it.
 *  Why the stepd check fails the tasks and not user_init: in Slurm 22.05 a
 *  failing slurm_spank_user_init aborts the launch, yet srun exits 0 and the
 *  job ends COMPLETED. So user_init prints the message (slurmstepd forwards
 *  its errors to the user's srun from there on) and records the failure;
 *  slurm_spank_task_init_privileged then fails every task before exec, which
 *  makes the step, and srun, fail.
 *
 *  What it does not enforce: tasks of one step run as one user, and a process
 *  can reach a same-user process's mount namespace through /proc/PID/root,
 *  or ptrace it. The isolation keeps each silo's code to its own data (no
 *  accidental cross-silo reads); it is not a boundary against a user who
 *  sets out to read their own other silos. Who may run which silo is only as
 *  trustworthy as the manifest: sites should keep manifests that users cannot
 *  edit. Mounts under a DATA_DIR or STATE_DIR are not carried into the views.
\*****************************************************************************/

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

SPANK_PLUGIN(spank_fedsilo, 1);

#define DEFAULT_DATA_PATH  "/run/fedsilo/data"
#define DEFAULT_STATE_PATH "/run/fedsilo/state"
#define ERR_LEN            1024
#define MAX_SILO_NAME      64

/* One silo of the manifest. */
struct silo {
	int line;		/* line number in the manifest */
	char *name;
	char *data_dir;		/* as written in the manifest */
	char *state_dir;
	char *allowed;		/* "alice,@group" */
	char *data_real;	/* canonical paths, once resolved */
	char *state_real;
	int data_fd;		/* O_PATH descriptors kept for the silos of */
	int state_fd;		/* this node's tasks (slurmstepd only), or -1 */
	bool local;		/* a task of this node runs this silo */
};

struct manifest {
	char *path;		/* as given to --fedsilo-silos */
	struct silo *silos;
	int count;
	int cap;
};

/* The step's user, as the checks see them. */
struct identity {
	char name[256];
	gid_t *groups;		/* primary and supplementary */
	int ngroups;
};

/*
 * The plugin's state. SPANK calls plugin functions without a user pointer,
 * so the state lives here; one plugin instance per process (srun, sbatch,
 * slurmstepd and the task children forked from it, which inherit it).
 */
static struct {
	char data_path[PATH_MAX];	/* plugstack.conf arguments */
	char state_path[PATH_MAX];
	bool srun_check;
	char *manifest_arg;		/* --fedsilo-silos value, NULL if unused */
	bool active;			/* slurmstepd of a normal step, option on */
	struct manifest manifest;
	char error[ERR_LEN];		/* a failed stepd check, for the tasks */
	bool failed;
} fs = {
	.data_path = DEFAULT_DATA_PATH,
	.state_path = DEFAULT_STATE_PATH,
	.srun_check = true,
};

/* ----------------------------------------------------------- small helpers */

/* Formats an error message into err (ERR_LEN bytes); returns -1. */
__attribute__ ((format (printf, 2, 3)))
static int _fail(char *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, ERR_LEN, fmt, ap);
	va_end(ap);
	return -1;
}

/* True when path equals dir or lies below it (both canonical, absolute). */
static bool _within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1 && dir[0] == '/')
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* True when one of a, b equals or contains the other. */
static bool _nested(const char *a, const char *b)
{
	return _within(a, b) || _within(b, a);
}

/* Copies an absolute path, dropping trailing slashes ("/x/" -> "/x"). */
static int _set_path(char *dst, const char *src, const char *key, char *err)
{
	size_t n = strlen(src);

	if (n == 0 || src[0] != '/')
		return _fail(err, "%s must be an absolute path, got '%s'",
			     key, src);
	if (n >= PATH_MAX)
		return _fail(err, "%s is too long", key);
	while (n > 1 && src[n - 1] == '/')
		n--;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

/* The canonical path of an open descriptor (the kernel's view of it). */
static char *_fd_path(int fd)
{
	char link[64], buf[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, sizeof(buf) - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

static void _close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---------------------------------------------------------------- manifest */

static void _manifest_free(struct manifest *m)
{
	for (int i = 0; i < m->count; i++) {
		struct silo *s = &m->silos[i];

		_close_fd(&s->data_fd);
		_close_fd(&s->state_fd);
		free(s->name);
		free(s->data_dir);
		free(s->state_dir);
		free(s->allowed);
		free(s->data_real);
		free(s->state_real);
	}
	free(m->silos);
	free(m->path);
	memset(m, 0, sizeof(*m));
}

static bool _valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > MAX_SILO_NAME)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

/* ALLOWED is "entry[,entry...]", each a user name or @group, none empty. */
static bool _valid_allowed(const char *allowed)
{
	const char *p = allowed;

	for (;;) {
		size_t n = strcspn(p, ",");

		if (n == 0 || (p[0] == '@' && n == 1))
			return false;
		if (p[n] == '\0')
			return true;
		p += n + 1;
	}
}

/* Checks one line's fields and appends the silo. */
static int _manifest_add(struct manifest *m, int line, char **f, char *err)
{
	struct silo *s;

	if (!_valid_name(f[0]))
		return _fail(err, "%s:%d: silo name '%s' must be 1-%d of "
			     "A-Z a-z 0-9 . _ -", m->path, line, f[0],
			     MAX_SILO_NAME);
	for (int k = 1; k <= 2; k++) {
		if (f[k][0] != '/')
			return _fail(err, "%s:%d: silo '%s': %s '%s' must be "
				     "an absolute path", m->path, line, f[0],
				     k == 1 ? "DATA_DIR" : "STATE_DIR", f[k]);
	}
	if (!_valid_allowed(f[3]))
		return _fail(err, "%s:%d: silo '%s': ALLOWED '%s' must be "
			     "user names and @group names separated by commas",
			     m->path, line, f[0], f[3]);
	for (int i = 0; i < m->count; i++) {
		if (strcmp(m->silos[i].name, f[0]) == 0)
			return _fail(err, "%s:%d: duplicate silo name '%s' "
				     "(first on line %d)", m->path, line, f[0],
				     m->silos[i].line);
	}

	if (m->count == m->cap) {
		int cap = m->cap ? 2 * m->cap : 16;
		struct silo *grown = realloc(m->silos, cap * sizeof(*grown));

		if (!grown)
			return _fail(err, "out of memory");
		m->silos = grown;
		m->cap = cap;
	}
	s = &m->silos[m->count];
	memset(s, 0, sizeof(*s));
	s->line = line;
	s->data_fd = s->state_fd = -1;
	s->name = strdup(f[0]);
	s->data_dir = strdup(f[1]);
	s->state_dir = strdup(f[2]);
	s->allowed = strdup(f[3]);
	m->count++;
	if (!s->name || !s->data_dir || !s->state_dir || !s->allowed)
		return _fail(err, "out of memory");
	return 0;
}

/* Splits one line (comment already cut) into fields; returns their count. */
static int _split(char *line, char **f, int max)
{
	char *save = NULL, *tok;
	int n = 0;

	for (tok = strtok_r(line, " \t\r\n\v\f", &save); tok;
	     tok = strtok_r(NULL, " \t\r\n\v\f", &save)) {
		if (n < max)
			f[n] = tok;
		n++;
	}
	return n;
}

/*
 * Reads the manifest with the caller's credentials (srun: the user; stepd:
 * called from user_init, where the effective ids are the user's).
 */
static int _manifest_read(struct manifest *m, const char *path, char *err)
{
	char *line = NULL, *f[4];
	size_t cap = 0;
	int fd, line_no = 0, rc = 0;
	struct stat st;
	FILE *fp;

	memset(m, 0, sizeof(*m));
	if (!(m->path = strdup(path)))
		return _fail(err, "out of memory");

	/* O_NONBLOCK: a FIFO given as manifest must not hang the step. */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return _fail(err, "cannot read manifest %s: %s", path,
			     strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return _fail(err, "manifest %s is not a regular file", path);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if (!(fp = fdopen(fd, "r"))) {
		close(fd);
		return _fail(err, "cannot read manifest %s: %s", path,
			     strerror(errno));
	}

	while (rc == 0 && getline(&line, &cap, fp) >= 0) {
		char *hash = strchr(line, '#');
		int n;

		line_no++;
		if (hash)
			*hash = '\0';
		n = _split(line, f, 4);
		if (n == 0)
			continue;
		if (n != 4)
			rc = _fail(err, "%s:%d: expected 4 fields (NAME "
				   "DATA_DIR STATE_DIR ALLOWED), found %d",
				   path, line_no, n);
		else
			rc = _manifest_add(m, line_no, f, err);
	}
	if (rc == 0 && ferror(fp))
		rc = _fail(err, "cannot read manifest %s: %s", path,
			   strerror(errno));
	if (rc == 0 && m->count == 0)
		rc = _fail(err, "manifest %s lists no silos", path);
	free(line);
	fclose(fp);
	return rc;
}

/* ---------------------------------------------------------------- identity */

static void _identity_free(struct identity *id)
{
	free(id->groups);
	id->groups = NULL;
}

/* The user's name and groups (primary and supplementary, as getgrouplist). */
static int _identity_get(struct identity *id, uid_t uid, char *err)
{
	struct passwd pw, *pwp = NULL;
	char buf[4096];
	int n = 32;

	memset(id, 0, sizeof(*id));
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &pwp) != 0 || !pwp)
		return _fail(err, "cannot look up the user of uid %u",
			     (unsigned) uid);
	snprintf(id->name, sizeof(id->name), "%s", pw.pw_name);

	for (;;) {
		int want = n;
		gid_t *g = realloc(id->groups, want * sizeof(*g));

		if (!g)
			return _fail(err, "out of memory");
		id->groups = g;
		/* On -1, n holds the number of groups needed. */
		if (getgrouplist(pw.pw_name, pw.pw_gid, g, &n) >= 0)
			break;
		if (n <= want)
			n = want * 2;
	}
	id->ngroups = n;
	return 0;
}

static bool _in_group(const struct identity *id, const char *group)
{
	struct group gr, *grp = NULL;
	size_t len = 4096;
	char *buf = NULL;
	bool member = false;
	int rc;

	/* Large groups list many members: grow the buffer on ERANGE. */
	do {
		char *bigger = realloc(buf, len);

		if (!bigger)
			break;
		buf = bigger;
		rc = getgrnam_r(group, &gr, buf, len, &grp);
		len *= 2;
	} while (rc == ERANGE && len <= (1 << 24));

	for (int i = 0; grp && i < id->ngroups; i++) {
		if (id->groups[i] == grp->gr_gid)
			member = true;
	}
	free(buf);
	return member;
}

/* True when the ALLOWED list names the user or one of their groups. */
static bool _may_run(const struct identity *id, const char *allowed)
{
	char *list = strdup(allowed), *save = NULL, *tok;
	bool ok = false;

	if (!list)
		return false;
	for (tok = strtok_r(list, ",", &save); tok && !ok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (tok[0] == '@')
			ok = _in_group(id, tok + 1);
		else
			ok = strcmp(tok, id->name) == 0;
	}
	free(list);
	return ok;
}

/* ------------------------------------------------------------------ checks */

/*
 * Opens one silo directory with the caller's credentials and checks that
 * they may use it (mode: R_OK|X_OK for data, plus W_OK for state). Sets the
 * canonical path; keeps the descriptor in *fd when keep, else closes it.
 */
static int _open_dir(const struct manifest *m, const struct silo *s,
		     const char *key, const char *path, int mode, bool keep,
		     int *fd, char **real, const struct identity *id,
		     char *err)
{
	int d = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (d < 0) {
		if (errno == ENOENT)
			return _fail(err, "%s:%d: silo '%s': %s %s does not "
				     "exist", m->path, s->line, s->name, key,
				     path);
		if (errno == ENOTDIR)
			return _fail(err, "%s:%d: silo '%s': %s %s is not a "
				     "directory", m->path, s->line, s->name,
				     key, path);
		return _fail(err, "%s:%d: silo '%s': user '%s' cannot reach "
			     "%s %s: %s", m->path, s->line, s->name, id->name,
			     key, path, strerror(errno));
	}
	/* AT_EMPTY_PATH: the permission check applies to d itself. */
	if (faccessat(d, "", mode, AT_EACCESS | AT_EMPTY_PATH) < 0) {
		close(d);
		return _fail(err, "%s:%d: silo '%s': user '%s' may not %s %s "
			     "%s: %s", m->path, s->line, s->name, id->name,
			     (mode & W_OK) ? "read and write" : "read", key,
			     path, strerror(errno));
	}
	if (!(*real = _fd_path(d))) {
		close(d);
		return _fail(err, "%s:%d: silo '%s': cannot resolve %s %s",
			     m->path, s->line, s->name, key, path);
	}
	if (keep)
		*fd = d;
	else
		close(d);
	return 0;
}

/*
 * Checks every silo: the user may run it, its directories exist and the user
 * may use them, and the directories do not overlap in ways that would break
 * the isolation. keep_fds: keep descriptors for the silos marked local.
 */
static int _manifest_check(struct manifest *m, const struct identity *id,
			   bool keep_fds, char *err)
{
	for (int i = 0; i < m->count; i++) {
		struct silo *s = &m->silos[i];
		bool keep = keep_fds && s->local;

		if (!_may_run(id, s->allowed))
			return _fail(err, "%s:%d: user '%s' may not run silo "
				     "'%s' (ALLOWED: %s)", m->path, s->line,
				     id->name, s->name, s->allowed);
		if (_open_dir(m, s, "DATA_DIR", s->data_dir, R_OK | X_OK,
			      keep, &s->data_fd, &s->data_real, id, err) ||
		    _open_dir(m, s, "STATE_DIR", s->state_dir,
			      R_OK | W_OK | X_OK, keep, &s->state_fd,
			      &s->state_real, id, err))
			return -1;
		/* A STATE_DIR inside the DATA_DIR would make data writable. */
		if (_nested(s->data_real, s->state_real))
			return _fail(err, "%s:%d: silo '%s': DATA_DIR %s and "
				     "STATE_DIR %s must not be the same "
				     "directory or inside one another",
				     m->path, s->line, s->name, s->data_real,
				     s->state_real);
		/* A silo directory holding a mount point would be hidden. */
		for (int k = 0; k < 2; k++) {
			const char *dir = k ? s->state_real : s->data_real;
			const char *mp[2] = { fs.data_path, fs.state_path };

			for (int j = 0; j < 2; j++) {
				if (_nested(dir, mp[j]))
					return _fail(err, "%s:%d: silo '%s': "
						     "%s overlaps the plugin's "
						     "mount point %s", m->path,
						     s->line, s->name, dir,
						     mp[j]);
			}
		}
		/* Two silos sharing a directory could not be kept apart. */
		for (int j = 0; j < i; j++) {
			const struct silo *o = &m->silos[j];
			const char *mine[2] = { s->data_real, s->state_real };
			const char *theirs[2] = { o->data_real, o->state_real };

			for (int a = 0; a < 2; a++) {
				for (int b = 0; b < 2; b++) {
					if (strcmp(mine[a], theirs[b]) == 0)
						return _fail(err, "%s:%d: silo "
							"'%s' shares directory "
							"%s with silo '%s' "
							"(line %d)", m->path,
							s->line, s->name,
							mine[a], o->name,
							o->line);
				}
			}
		}
	}
	return 0;
}

static int _check_task_count(const struct manifest *m, uint32_t ntasks,
			     char *err)
{
	if (ntasks == (uint32_t) m->count)
		return 0;
	return _fail(err, "the step has %u task%s but manifest %s lists %d "
		     "silo%s (task i runs silo i): use -n %d", ntasks,
		     ntasks == 1 ? "" : "s", m->path, m->count,
		     m->count == 1 ? "" : "s", m->count);
}

/* -------------------------------------------------------- isolation (task) */

static int _by_length_desc(const void *a, const void *b)
{
	const char *x = *(const char *const *) a, *y = *(const char *const *) b;
	size_t nx = strlen(x), ny = strlen(y);

	if (nx != ny)
		return nx < ny ? 1 : -1;
	return strcmp(x, y);
}

/* Appends prefix + suffix, newly allocated, to list (the caller sized it). */
static int _push(char **list, int *n, const char *prefix, const char *suffix)
{
	char *p = NULL;

	if (asprintf(&p, "%s%s", prefix, suffix) < 0)
		return -1;
	list[(*n)++] = p;
	return 0;
}

/*
 * The paths to cover for a task of silo `own`: every other silo's
 * directories at their real paths, and, where one of them lies inside one
 * of own's directories, also at the same place in the view of that
 * directory (data_path/REL or state_path/REL), which the real-path cover
 * does not reach. Sorted deepest first, duplicates removed: a directory is
 * covered before any ancestor of it, whose cover would make it unreachable.
 */
static char **_hide_list(const struct manifest *m, const struct silo *own,
			 int *count)
{
	const char *own_dirs[2] = { own->data_real, own->state_real };
	const char *views[2] = { fs.data_path, fs.state_path };
	char **list = calloc(6 * (size_t) m->count + 1, sizeof(*list));
	int n = 0, out = 0;

	if (!list)
		return NULL;
	for (int i = 0; i < m->count; i++) {
		const struct silo *o = &m->silos[i];
		const char *dirs[2] = { o->data_real, o->state_real };

		if (o == own)
			continue;
		for (int k = 0; k < 2; k++) {
			if (_push(list, &n, dirs[k], ""))
				goto nomem;
			for (int v = 0; v < 2; v++) {
				if (!_within(dirs[k], own_dirs[v]))
					continue;
				/* strictly inside: shared dirs were refused */
				if (_push(list, &n, views[v],
					  dirs[k] + strlen(own_dirs[v])))
					goto nomem;
			}
		}
	}
	qsort(list, n, sizeof(*list), _by_length_desc);
	for (int i = 0; i < n; i++) {
		if (out > 0 && strcmp(list[out - 1], list[i]) == 0)
			free(list[i]);
		else
			list[out++] = list[i];
	}
	*count = out;
	return list;
nomem:
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return NULL;
}

/*
 * Bind-mounts dir (canonical path) at target, read-only when asked, and
 * checks that the mount shows the directory open as fd: the descriptor was
 * opened with the user's rights during the check, so a path component
 * swapped since then (by a symlink the user owns) cannot redirect the bind.
 * A descriptor cannot be bound itself: its mount belongs to the host's
 * namespace, and bind mounts from another namespace are refused (EINVAL).
 */
static int _bind(int fd, const char *dir, const char *target, bool read_only,
		 char *err)
{
	unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV;
	struct stat want, got;

	if (mount(dir, target, NULL, MS_BIND, NULL) < 0)
		return _fail(err, "bind mount of %s at %s: %s", dir, target,
			     strerror(errno));
	if (fstat(fd, &want) < 0 || stat(target, &got) < 0 ||
	    want.st_dev != got.st_dev || want.st_ino != got.st_ino)
		return _fail(err, "%s changed since it was checked", dir);
	/* Per-mount flags take a second call: MS_BIND ignores them. */
	if (read_only)
		flags |= MS_RDONLY;
	if (mount(NULL, target, NULL, flags, NULL) < 0)
		return _fail(err, "remount of %s: %s", target,
			     strerror(errno));
	return 0;
}

/*
 * Runs in the task's child process, as root, before exec: gives it a mount
 * namespace of its own with its silo's view. Order matters: the task's own
 * directories are bound first, so that covering another silo's directory
 * which happens to contain them does not take them away from the task.
 */
static int _isolate(const struct manifest *m, const struct silo *own,
		    char *err)
{
	char **hide;
	int nhide = 0, rc = 0;

	if (own->data_fd < 0 || own->state_fd < 0)
		return _fail(err, "silo '%s' was not opened for this node",
			     own->name);
	if (unshare(CLONE_NEWNS) < 0)
		return _fail(err, "unshare(CLONE_NEWNS): %s", strerror(errno));
	/* Nothing we mount from here on may propagate to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return _fail(err, "making / private: %s", strerror(errno));

	if (_bind(own->data_fd, own->data_real, fs.data_path, true, err) ||
	    _bind(own->state_fd, own->state_real, fs.state_path, false, err))
		return -1;

	if (!(hide = _hide_list(m, own, &nhide)))
		return _fail(err, "out of memory");
	for (int i = 0; i < nhide; i++) {
		/* 4 KiB, read-only, mode 000: empty and closed to the user. */
		if (rc == 0 && mount("fedsilo-hidden", hide[i], "tmpfs",
				     MS_RDONLY | MS_NOSUID | MS_NODEV |
				     MS_NOEXEC, "size=4k,mode=000") < 0)
			rc = _fail(err, "hiding %s: %s", hide[i],
				   strerror(errno));
		free(hide[i]);
	}
	free(hide);
	return rc;
}

/* ---------------------------------------------------------- option, config */

static int _opt_silos(int val, const char *optarg, int remote)
{
	(void) val;
	(void) remote;
	if (!optarg || !optarg[0]) {
		slurm_error("fedsilo: --fedsilo-silos needs a manifest file");
		return -1;
	}
	free(fs.manifest_arg);
	fs.manifest_arg = strdup(optarg);
	return fs.manifest_arg ? 0 : -1;
}

static struct spank_option silos_option = {
	"fedsilo-silos", "MANIFEST",
	"Run one fedsilo silo per task as listed in MANIFEST (NAME DATA_DIR "
	"STATE_DIR ALLOWED per line); each task sees only its own silo's "
	"directories, at $FEDSILO_DATA_DIR and $FEDSILO_STATE_DIR.",
	1, 0, _opt_silos
};

/* Parses the plugstack.conf arguments. */
static int _parse_args(int ac, char **av, char *err)
{
	for (int i = 0; i < ac; i++) {
		const char *a = av[i];

		if (strncmp(a, "data_path=", 10) == 0) {
			if (_set_path(fs.data_path, a + 10, "data_path", err))
				return -1;
		} else if (strncmp(a, "state_path=", 11) == 0) {
			if (_set_path(fs.state_path, a + 11, "state_path",
				      err))
				return -1;
		} else if (strcmp(a, "srun_check=yes") == 0) {
			fs.srun_check = true;
		} else if (strcmp(a, "srun_check=no") == 0) {
			fs.srun_check = false;
		} else {
			return _fail(err, "unknown argument '%s' (known: "
				     "data_path=PATH state_path=PATH "
				     "srun_check=yes|no)", a);
		}
	}
	if (_nested(fs.data_path, fs.state_path))
		return _fail(err, "data_path %s and state_path %s must not be "
			     "the same directory or inside one another",
			     fs.data_path, fs.state_path);
	return 0;
}

/* mkdir -p for the mount points, as root; then canonical (in place). */
static int _make_mount_point(char *path, const char *key, char *err)
{
	char buf[PATH_MAX], real[PATH_MAX];
	struct stat st;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;

			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return _fail(err, "cannot create %s %s: %s",
					     key, buf, strerror(errno));
			*p = saved;
			if (saved == '\0')
				break;
		}
	}
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return _fail(err, "%s %s is not a directory", key, path);
	if (!realpath(path, real))
		return _fail(err, "cannot resolve %s %s: %s", key, path,
			     strerror(errno));
	snprintf(path, PATH_MAX, "%s", real);
	return 0;
}

/* True for steps that run user tasks (not batch, extern or interactive). */
static bool _normal_step(spank_t sp)
{
	uint32_t step = 0;

	if (spank_get_item(sp, S_JOB_STEPID, &step) != ESPANK_SUCCESS)
		return false;
	return step < SLURM_MAX_NORMAL_STEP_ID;
}

/* ------------------------------------------------------------ SPANK hooks */

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();
	char err[ERR_LEN];

	if (ctx != S_CTX_LOCAL && ctx != S_CTX_REMOTE &&
	    ctx != S_CTX_ALLOCATOR)
		return 0;
	if (_parse_args(ac, av, err)) {
		slurm_error("spank_fedsilo: plugstack.conf: %s", err);
		if (ctx != S_CTX_REMOTE)
			return -1;
		/*
		 * slurmstepd: failing here would abort the launch with the
		 * message in slurmd's log only, and srun exiting 0. Fail the
		 * steps that use the option instead, like a failed check.
		 */
		_fail(fs.error, "plugstack.conf: %.900s", err);
		fs.failed = true;
	}
	if (spank_option_register(sp, &silos_option) != ESPANK_SUCCESS) {
		slurm_error("spank_fedsilo: cannot register --%s",
			    silos_option.name);
		return -1;
	}
	return 0;
}

/*
 * srun: the early check of the manifest (its task count follows in
 * local_user_init, once the step's size is known).
 * slurmstepd (root): the mount points. Its errors are kept for user_init,
 * whose messages reach the user; messages from here only reach slurmd's log.
 */
int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	char err[ERR_LEN];

	(void) ac;
	(void) av;
	if (!fs.manifest_arg)
		return 0;

	if (spank_context() == S_CTX_LOCAL && fs.srun_check) {
		struct identity id;
		int rc = _identity_get(&id, getuid(), err);

		if (rc == 0 &&
		    (rc = _manifest_read(&fs.manifest, fs.manifest_arg, err))
		    == 0)
			rc = _manifest_check(&fs.manifest, &id, false, err);
		_identity_free(&id);
		if (rc) {
			slurm_error("fedsilo: %s", err);
			return -1;
		}
		return 0;
	}

	if (spank_context() == S_CTX_REMOTE && _normal_step(sp)) {
		fs.active = true;
		if (!fs.failed &&
		    (_make_mount_point(fs.data_path, "data_path", fs.error) ||
		     _make_mount_point(fs.state_path, "state_path", fs.error)))
			fs.failed = true;
	}
	return 0;
}

/* srun: the step's task count against the silo count. */
int slurm_spank_local_user_init(spank_t sp, int ac, char **av)
{
	char err[ERR_LEN];
	uint32_t ntasks = 0;

	(void) ac;
	(void) av;
	if (!fs.manifest_arg || !fs.srun_check || fs.manifest.count == 0)
		return 0;
	if (spank_get_item(sp, S_JOB_TOTAL_TASK_COUNT, &ntasks) !=
	    ESPANK_SUCCESS)
		return 0;	/* unknown here: slurmstepd checks it */
	if (_check_task_count(&fs.manifest, ntasks, err)) {
		slurm_error("fedsilo: %s", err);
		return -1;
	}
	return 0;
}

/* Marks the silos of this node's tasks, whose directories get mounted. */
static int _mark_local_silos(spank_t sp, char *err)
{
	uint32_t nlocal = 0;

	if (spank_get_item(sp, S_JOB_LOCAL_TASK_COUNT, &nlocal) !=
	    ESPANK_SUCCESS)
		return _fail(err, "cannot get the local task count");
	for (uint32_t t = 0; t < nlocal; t++) {
		uint32_t global = 0;

		if (spank_get_item(sp, S_JOB_LOCAL_TO_GLOBAL_ID, t, &global) !=
		    ESPANK_SUCCESS)
			return _fail(err, "cannot map local task %u", t);
		if (global < (uint32_t) fs.manifest.count)
			fs.manifest.silos[global].local = true;
	}
	return 0;
}

/*
 * slurmstepd, with the user's effective uid and groups, in the step's
 * working directory: the authoritative check.
 */
int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	struct identity id = { 0 };
	uint32_t ntasks = 0;
	uid_t uid = 0;
	char *err = fs.error;
	int rc;

	(void) ac;
	(void) av;
	if (!fs.active)
		return 0;
	if (fs.failed) {
		slurm_error("fedsilo: %s", fs.error);
		return 0;
	}

	if (spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS)
		rc = _fail(err, "cannot get the step's user");
	else if (spank_get_item(sp, S_JOB_TOTAL_TASK_COUNT, &ntasks) !=
		 ESPANK_SUCCESS)
		rc = _fail(err, "cannot get the step's task count");
	else
		rc = _identity_get(&id, uid, err);
	if (rc == 0)
		rc = _manifest_read(&fs.manifest, fs.manifest_arg, err);
	if (rc == 0)
		rc = _mark_local_silos(sp, err);
	if (rc == 0)
		rc = _manifest_check(&fs.manifest, &id, true, err);
	if (rc == 0)
		rc = _check_task_count(&fs.manifest, ntasks, err);
	_identity_free(&id);

	if (rc) {
		/* Shown on the user's terminal; the tasks fail below. */
		slurm_error("fedsilo: %s", err);
		fs.failed = true;
	}
	return 0;
}

/* The task's child, as root, before exec: its mounts and environment. */
int slurm_spank_task_init_privileged(spank_t sp, int ac, char **av)
{
	char err[ERR_LEN];
	uint32_t task = 0;
	const struct silo *own;

	(void) ac;
	(void) av;
	if (!fs.active)
		return 0;
	if (fs.failed)
		return -1;	/* the message was printed by user_init */

	if (spank_get_item(sp, S_TASK_GLOBAL_ID, &task) != ESPANK_SUCCESS ||
	    task >= (uint32_t) fs.manifest.count) {
		slurm_error("fedsilo: task %u has no silo", task);
		return -1;
	}
	own = &fs.manifest.silos[task];
	if (_isolate(&fs.manifest, own, err)) {
		slurm_error("fedsilo: task %u, silo '%s': %s", task,
			    own->name, err);
		return -1;
	}
	/* The task needs none of the descriptors (they are CLOEXEC too). */
	for (int i = 0; i < fs.manifest.count; i++) {
		_close_fd(&fs.manifest.silos[i].data_fd);
		_close_fd(&fs.manifest.silos[i].state_fd);
	}
	if (spank_setenv(sp, "FEDSILO_SILO", own->name, 1) != ESPANK_SUCCESS ||
	    spank_setenv(sp, "FEDSILO_DATA_DIR", fs.data_path, 1) !=
	    ESPANK_SUCCESS ||
	    spank_setenv(sp, "FEDSILO_STATE_DIR", fs.state_path, 1) !=
	    ESPANK_SUCCESS) {
		slurm_error("fedsilo: task %u: cannot set its environment",
			    task);
		return -1;
	}
	return 0;
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
	(void) sp;
	(void) ac;
	(void) av;
	_manifest_free(&fs.manifest);
	free(fs.manifest_arg);
	fs.manifest_arg = NULL;
	return 0;
}

/* File hints: rules over a file's path and text, said in words for a
 * classify prompt.  No regex library: each pattern is a small scanner. */
#include "runner/filehints.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "docket/redact.h"

/* ---- names ---- */

/* How a name rule matches the file's base name (case-insensitive). */
enum match {
	M_EXACT,
	M_SUFFIX,
	M_PREFIX,
	M_DOC /* the stem is the word, and any extension a text one: README.md, COPYING */
};

struct name_rule {
	enum match m;
	const char *pat;
	const char *phrase;
};

/* What a fact points to, and how strongly: the strongest fact (lowest
 * tier) gives the rules' guess.  A secret or a generated banner outranks
 * what a name says; a name (Makefile, README) outranks its directory
 * (tests/README is documentation); a test name or directory outranks a
 * language (tests/helper.py is a test). */
enum tier { T_CONTENT, T_NAME, T_TEST, T_KIND, T_DIR, T_SCRIPT, T_NONE };

struct guess {
	enum tier tier;
	const char *label;
};

static void lean(struct guess *g, enum tier t, const char *label)
{
	if (label && t < g->tier) {
		g->tier = t;
		g->label = label;
	}
}

/* the label a name rule's phrase points to */
static const char *phrase_label(const char *ph)
{
	static const struct {
		const char *start, *label;
	} m[] = {
		{"a file name used for", "sensitive"}, {"a generated", "generated"}, {"minified", "generated"},
		{"generated", "generated"},		 {"a build", "build"},	     {"a CI ", "build"},
		{"a job script", "build"},		 {"a documentation", "documentation"},
		{"a configuration", "configuration"},	 {"a data format", "data"},
	};
	for (size_t i = 0; i < sizeof m / sizeof *m; i++)
		if (!strncmp(ph, m[i].start, strlen(m[i].start)))
			return m[i].label;
	return NULL;
}

/* The first rule that matches names the file's kind; order matters
 * (package-lock.json before *.json, *.min.js before *.js). */
static const struct name_rule name_rules[] = {
	/* names that hold secrets */
	{M_EXACT, ".env", "a file name used for secrets (.env)"},
	{M_EXACT, ".env.example", "a configuration template (.env example)"},
	{M_EXACT, ".env.sample", "a configuration template (.env example)"},
	{M_EXACT, ".env.template", "a configuration template (.env example)"},
	{M_EXACT, ".env.dist", "a configuration template (.env example)"},
	{M_PREFIX, ".env.", "a file name used for secrets (.env)"},
	{M_SUFFIX, ".pem", "a file name used for keys (.pem)"},
	{M_SUFFIX, ".key", "a file name used for keys (.key)"},
	{M_SUFFIX, ".p12", "a file name used for keys (.p12)"},
	{M_SUFFIX, ".pfx", "a file name used for keys (.pfx)"},
	{M_SUFFIX, ".jks", "a file name used for keys (.jks)"},
	{M_SUFFIX, ".keystore", "a file name used for keys (.keystore)"},
	{M_EXACT, "id_rsa", "a file name used for private keys (id_rsa)"},
	{M_EXACT, "id_dsa", "a file name used for private keys (id_dsa)"},
	{M_EXACT, "id_ecdsa", "a file name used for private keys (id_ecdsa)"},
	{M_EXACT, "id_ed25519", "a file name used for private keys (id_ed25519)"},
	{M_EXACT, ".netrc", "a file name used for passwords (.netrc)"},
	{M_EXACT, ".pgpass", "a file name used for passwords (.pgpass)"},
	{M_EXACT, ".htpasswd", "a file name used for passwords (.htpasswd)"},
	{M_EXACT, "credentials", "a file name used for secrets (credentials)"},
	{M_EXACT, "credentials.json", "a file name used for secrets (credentials)"},
	{M_EXACT, "secrets.yaml", "a file name used for secrets (secrets)"},
	{M_EXACT, "secrets.yml", "a file name used for secrets (secrets)"},
	{M_EXACT, "secrets.json", "a file name used for secrets (secrets)"},
	{M_EXACT, "secrets.toml", "a file name used for secrets (secrets)"},
	{M_EXACT, "secrets.env", "a file name used for secrets (secrets)"},
	{M_EXACT, "secrets.txt", "a file name used for secrets (secrets)"},
	/* generated and locked */
	{M_EXACT, "package-lock.json", "a generated lock file"},
	{M_EXACT, "npm-shrinkwrap.json", "a generated lock file"},
	{M_EXACT, "pnpm-lock.yaml", "a generated lock file"},
	{M_EXACT, "go.sum", "a generated lock file"},
	{M_SUFFIX, ".lock", "a generated lock file"},
	{M_SUFFIX, ".min.js", "minified generated code"},
	{M_SUFFIX, ".min.css", "minified generated code"},
	{M_SUFFIX, ".js.map", "a generated source map"},
	{M_SUFFIX, ".css.map", "a generated source map"},
	{M_SUFFIX, ".pb.go", "generated protobuf code"},
	{M_SUFFIX, ".pb.cc", "generated protobuf code"},
	{M_SUFFIX, ".pb.h", "generated protobuf code"},
	{M_SUFFIX, "_pb2.py", "generated protobuf code"},
	{M_SUFFIX, ".g.dart", "generated code"},
	{M_SUFFIX, ".designer.cs", "generated code"},
	{M_EXACT, "makefile.in", "a generated build file (Makefile.in)"},
	/* build and CI */
	{M_EXACT, "makefile", "a build file (Makefile)"},
	{M_EXACT, "gnumakefile", "a build file (Makefile)"},
	{M_SUFFIX, ".mk", "a build file (make)"},
	{M_SUFFIX, ".mak", "a build file (make)"},
	{M_EXACT, "cmakelists.txt", "a build file (CMake)"},
	{M_SUFFIX, ".cmake", "a build file (CMake)"},
	{M_EXACT, "meson.build", "a build file (Meson)"},
	{M_EXACT, "meson_options.txt", "a build file (Meson)"},
	{M_EXACT, "configure.ac", "a build file (autoconf)"},
	{M_EXACT, "configure.in", "a build file (autoconf)"},
	{M_EXACT, "makefile.am", "a build file (automake)"},
	{M_EXACT, "dockerfile", "a build file (Dockerfile)"},
	{M_PREFIX, "dockerfile.", "a build file (Dockerfile)"},
	{M_SUFFIX, ".dockerfile", "a build file (Dockerfile)"},
	{M_EXACT, "containerfile", "a build file (Dockerfile)"},
	{M_PREFIX, "docker-compose", "a build and deploy file (Docker Compose)"},
	{M_EXACT, "jenkinsfile", "a CI pipeline file (Jenkins)"},
	{M_EXACT, ".gitlab-ci.yml", "a CI pipeline file (GitLab CI)"},
	{M_EXACT, ".travis.yml", "a CI pipeline file (Travis CI)"},
	{M_EXACT, "azure-pipelines.yml", "a CI pipeline file (Azure Pipelines)"},
	{M_EXACT, "appveyor.yml", "a CI pipeline file (AppVeyor)"},
	{M_EXACT, ".drone.yml", "a CI pipeline file (Drone)"},
	{M_EXACT, "vagrantfile", "a build file (Vagrant)"},
	{M_SUFFIX, ".gradle", "a build file (Gradle)"},
	{M_SUFFIX, ".gradle.kts", "a build file (Gradle)"},
	{M_EXACT, "pom.xml", "a build file (Maven)"},
	{M_EXACT, "build.xml", "a build file (Ant)"},
	{M_EXACT, "build", "a build file (Bazel)"},
	{M_EXACT, "build.bazel", "a build file (Bazel)"},
	{M_EXACT, "workspace", "a build file (Bazel)"},
	{M_SUFFIX, ".bzl", "a build file (Bazel)"},
	{M_EXACT, "sconstruct", "a build file (SCons)"},
	{M_EXACT, "rakefile", "a build file (Rake)"},
	{M_EXACT, "setup.py", "a build file (Python packaging)"},
	{M_EXACT, "pyproject.toml", "a build file (Python packaging)"},
	{M_EXACT, "setup.cfg", "a build file (Python packaging)"},
	{M_EXACT, "cargo.toml", "a build file (Cargo)"},
	{M_EXACT, "go.mod", "a build file (Go modules)"},
	{M_EXACT, "package.json", "a build file (npm package)"},
	{M_EXACT, "gemfile", "a build file (Bundler)"},
	{M_SUFFIX, ".gemspec", "a build file (RubyGems)"},
	{M_EXACT, "pkgbuild", "a build file (Arch package)"},
	{M_SUFFIX, ".spec", "a build file (RPM spec)"},
	{M_SUFFIX, ".sbatch", "a job script (Slurm)"},
	{M_EXACT, "flake.nix", "a build file (Nix)"},
	{M_EXACT, "default.nix", "a build file (Nix)"},
	{M_EXACT, "shell.nix", "a build file (Nix)"},
	{M_PREFIX, "requirements", "a build file (Python dependencies)"},
	{M_EXACT, "constraints.txt", "a build file (Python dependencies)"},
	{M_EXACT, "pipfile", "a build file (Python dependencies)"},
	{M_EXACT, "environment.yml", "a build file (conda environment)"},
	/* documentation */
	{M_DOC, "readme", "a documentation file (README)"},
	{M_DOC, "changelog", "a documentation file (changelog)"},
	{M_DOC, "changes", "a documentation file (changelog)"},
	{M_DOC, "history", "a documentation file (changelog)"},
	{M_DOC, "news", "a documentation file (news)"},
	{M_DOC, "license", "a documentation file (licence)"},
	{M_DOC, "licence", "a documentation file (licence)"},
	{M_DOC, "copying", "a documentation file (licence)"},
	{M_DOC, "notice", "a documentation file (licence notice)"},
	{M_DOC, "authors", "a documentation file (authors)"},
	{M_DOC, "contributors", "a documentation file (authors)"},
	{M_DOC, "maintainers", "a documentation file (authors)"},
	{M_DOC, "credits", "a documentation file (authors)"},
	{M_DOC, "thanks", "a documentation file (authors)"},
	{M_DOC, "copyright", "a documentation file (licence)"},
	{M_DOC, "contributing", "a documentation file (contributing guide)"},
	{M_DOC, "code_of_conduct", "a documentation file (code of conduct)"},
	{M_DOC, "security", "a documentation file (security policy)"},
	{M_DOC, "install", "a documentation file (install guide)"},
	{M_SUFFIX, ".md", "a documentation file (Markdown)"},
	{M_SUFFIX, ".markdown", "a documentation file (Markdown)"},
	{M_SUFFIX, ".rst", "a documentation file (reStructuredText)"},
	{M_SUFFIX, ".adoc", "a documentation file (AsciiDoc)"},
	{M_SUFFIX, ".asciidoc", "a documentation file (AsciiDoc)"},
	{M_SUFFIX, ".org", "a documentation file (Org)"},
	{M_SUFFIX, ".tex", "a documentation file (TeX)"},
	{M_SUFFIX, ".texi", "a documentation file (Texinfo)"},
	{M_SUFFIX, ".pod", "a documentation file (POD)"},
	{M_SUFFIX, ".docx", "a documentation file (Word)"},
	{M_SUFFIX, ".odt", "a documentation file (OpenDocument)"},
	{M_SUFFIX, ".pdf", "a documentation file (PDF)"},
	/* configuration */
	{M_SUFFIX, ".yaml", "a configuration format (YAML)"},
	{M_SUFFIX, ".yml", "a configuration format (YAML)"},
	{M_SUFFIX, ".toml", "a configuration format (TOML)"},
	{M_SUFFIX, ".ini", "a configuration format (INI)"},
	{M_SUFFIX, ".cfg", "a configuration format (cfg)"},
	{M_SUFFIX, ".conf", "a configuration format (conf)"},
	{M_SUFFIX, ".config", "a configuration format (config)"},
	{M_SUFFIX, ".properties", "a configuration format (properties)"},
	{M_SUFFIX, ".plist", "a configuration format (plist)"},
	{M_SUFFIX, ".service", "a configuration format (systemd unit)"},
	{M_SUFFIX, ".desktop", "a configuration format (desktop entry)"},
	{M_EXACT, ".gitignore", "a configuration file (.gitignore)"},
	{M_EXACT, ".gitattributes", "a configuration file (.gitattributes)"},
	{M_EXACT, ".gitmodules", "a configuration file (.gitmodules)"},
	{M_EXACT, ".dockerignore", "a configuration file (.dockerignore)"},
	{M_EXACT, ".editorconfig", "a configuration file (.editorconfig)"},
	{M_EXACT, ".clang-format", "a configuration file (.clang-format)"},
	{M_EXACT, ".clang-tidy", "a configuration file (.clang-tidy)"},
	{M_PREFIX, ".eslintrc", "a configuration file (.eslintrc)"},
	{M_PREFIX, ".prettierrc", "a configuration file (.prettierrc)"},
	{M_PREFIX, ".babelrc", "a configuration file (.babelrc)"},
	{M_EXACT, ".npmrc", "a configuration file (.npmrc)"},
	{M_EXACT, ".pylintrc", "a configuration file (.pylintrc)"},
	{M_EXACT, ".flake8", "a configuration file (.flake8)"},
	{M_EXACT, "tsconfig.json", "a configuration file (tsconfig)"},
	{M_EXACT, "tox.ini", "a configuration file (tox)"},
	/* data */
	{M_SUFFIX, ".csv", "a data format (CSV table)"},
	{M_SUFFIX, ".tsv", "a data format (TSV table)"},
	{M_SUFFIX, ".jsonl", "a data format (JSON lines)"},
	{M_SUFFIX, ".ndjson", "a data format (JSON lines)"},
	{M_SUFFIX, ".geojson", "a data format (GeoJSON)"},
	{M_SUFFIX, ".parquet", "a data format (Parquet)"},
	{M_SUFFIX, ".xlsx", "a data format (spreadsheet)"},
	{M_SUFFIX, ".xls", "a data format (spreadsheet)"},
	{M_SUFFIX, ".ods", "a data format (spreadsheet)"},
	{M_SUFFIX, ".log", "a data format (log)"},
	{M_SUFFIX, ".dat", "a data format (dat)"},
	{M_SUFFIX, ".arff", "a data format (ARFF)"},
	{M_SUFFIX, ".svg", "a data format (SVG image)"},
	{M_EXACT, "pkg-info", "generated packaging metadata (PKG-INFO)"},
	{M_SUFFIX, ".schema.json", "a configuration format (JSON Schema)"},
	{M_SUFFIX, ".j2", "a configuration template (Jinja)"},
	{M_SUFFIX, ".jinja", "a configuration template (Jinja)"},
	{M_SUFFIX, ".jinja2", "a configuration template (Jinja)"},
	{M_SUFFIX, ".tmpl", "a configuration template"},
	{M_SUFFIX, ".tpl", "a configuration template"},
	{M_SUFFIX, ".mustache", "a configuration template (Mustache)"},
	/* neutral formats: the text decides */
	{M_SUFFIX, ".json", "JSON"},
	{M_SUFFIX, ".xml", "XML"},
	{M_SUFFIX, ".html", "HTML"},
	{M_SUFFIX, ".htm", "HTML"},
	{M_SUFFIX, ".txt", "plain text"},
	{M_SUFFIX, ".eml", "an email message"},
};

/* Source languages by extension: "<name> source code". */
static const struct {
	const char *ext, *lang;
} langs[] = {
	{".c", "C"},	       {".h", "C header"},   {".cc", "C++"},	       {".cpp", "C++"},
	{".cxx", "C++"},       {".hpp", "C++ header"}, {".hh", "C++ header"},  {".hxx", "C++ header"},
	{".m", "Objective-C"}, {".mm", "Objective-C"}, {".go", "Go"},	       {".rs", "Rust"},
	{".py", "Python"},     {".pyi", "Python"},   {".java", "Java"},	       {".kt", "Kotlin"},
	{".kts", "Kotlin"},    {".scala", "Scala"},  {".js", "JavaScript"},   {".mjs", "JavaScript"},
	{".cjs", "JavaScript"}, {".jsx", "JavaScript"}, {".ts", "TypeScript"}, {".tsx", "TypeScript"},
	{".rb", "Ruby"},       {".php", "PHP"},	     {".cs", "C#"},	       {".fs", "F#"},
	{".swift", "Swift"},   {".lua", "Lua"},	     {".pl", "Perl"},	       {".pm", "Perl"},
	{".r", "R"},	       {".jl", "Julia"},     {".dart", "Dart"},	       {".ex", "Elixir"},
	{".exs", "Elixir"},    {".erl", "Erlang"},   {".hs", "Haskell"},       {".ml", "OCaml"},
	{".clj", "Clojure"},   {".el", "Emacs Lisp"}, {".vim", "Vim script"}, {".zig", "Zig"},
	{".nim", "Nim"},       {".sql", "SQL"},	     {".asm", "assembly"},     {".s", "assembly"},
	{".f90", "Fortran"},   {".f", "Fortran"},    {".vue", "Vue"},	       {".svelte", "Svelte"},
	{".groovy", "Groovy"}, {".proto", "Protocol Buffers"}, {".graphql", "GraphQL"},
	{".cu", "CUDA"},       {".cuh", "CUDA header"}, {".glsl", "GLSL"},     {".css", "CSS"},
	{".scss", "Sass"},     {".less", "Less"},    {".tcl", "Tcl"},	       {".awk", "awk"},
	{".sh", "shell script"}, {".bash", "shell script"}, {".zsh", "shell script"},
	{".fish", "shell script"}, {".ps1", "PowerShell script"}, {".bat", "batch script"},
	{".cmd", "batch script"}, {".gbnf", "grammar (GBNF)"}, {".ipynb", "Jupyter notebook"},
};

static bool ends_with_ci(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);
	return n >= k && !strncasecmp(s + n - k, suf, k);
}

static const char *base_of(const char *path)
{
	const char *b = path;
	for (const char *p = path; *p; p++)
		if (*p == '/' || (p[0] == '!' && p[1] == '/'))
			b = p[0] == '/' ? p + 1 : p + 2;
	return b;
}

/* base is word, or word.ext with a text extension */
static bool doc_name(const char *base, const char *word)
{
	size_t k = strlen(word);
	if (strncasecmp(base, word, k))
		return false;
	static const char *const ext[] = {"", ".md", ".txt", ".rst", ".adoc", ".markdown", ".org", ".html", NULL};
	for (int i = 0; ext[i]; i++)
		if (!strcasecmp(base + k, ext[i]))
			return true;
	return false;
}

static int name_kind(const char *base, struct dk_buf *out, bool *code, struct guess *g)
{
	size_t n = strlen(base);
	*code = false;
	for (size_t i = 0; i < sizeof name_rules / sizeof *name_rules; i++) {
		const struct name_rule *r = &name_rules[i];
		size_t k = strlen(r->pat);
		bool hit = r->m == M_EXACT    ? !strcasecmp(base, r->pat)
			   : r->m == M_SUFFIX ? n > k && ends_with_ci(base, n, r->pat)
			   : r->m == M_DOC    ? doc_name(base, r->pat)
					      : n >= k && !strncasecmp(base, r->pat, k);
		if (hit) {
			const char *l = phrase_label(r->phrase);
			/* a secret's file name is as strong as a secret; a format
			 * (.yaml, .csv) is weaker than a test directory, a tool's
			 * own settings file (.gitignore) is not */
			enum tier t = T_NAME;
			if (l && !strcmp(l, "sensitive"))
				t = T_CONTENT;
			else if (l && (!strcmp(l, "data") || !strcmp(l, "configuration")) && r->m != M_EXACT)
				t = T_KIND;
			lean(g, t, l);
			return dk_buf_printf(out, "%s%s", out->len ? "; " : "", r->phrase);
		}
	}
	for (size_t i = 0; i < sizeof langs / sizeof *langs; i++)
		if (n > strlen(langs[i].ext) && ends_with_ci(base, n, langs[i].ext)) {
			const char *l = langs[i].lang;
			/* a shell line "KEY=value" is a literal, as in a .env file */
			*code = !strstr(l, "shell");
			lean(g, T_KIND, "source");
			bool script = strstr(l, "script") || strstr(l, "grammar") || strstr(l, "header") ||
				      strstr(l, "notebook");
			return dk_buf_printf(out, "%s%s%s", out->len ? "; " : "", l,
					     script ? "" : " source code");
		}
	/* a man page: name.1 .. name.9 */
	if (n > 2 && base[n - 2] == '.' && base[n - 1] >= '1' && base[n - 1] <= '9') {
		lean(g, T_NAME, "documentation");
		return dk_buf_printf(out, "%sa documentation file (man page)", out->len ? "; " : "");
	}
	return 0;
}

/* test_x.c, x_test.go, x.test.js, x.spec.ts, XTest.java, conftest.py */
static bool test_name(const char *base)
{
	size_t n = strlen(base);
	const char *dot = strrchr(base, '.');
	size_t stem = dot && dot != base ? (size_t)(dot - base) : n;
	if (!strncasecmp(base, "test_", 5) || !strncasecmp(base, "test-", 5) ||
	    !strncasecmp(base, "tests_", 6) || !strcasecmp(base, "conftest.py"))
		return true;
	static const char *const sufs[] = {"_test", "_tests", "-test", "_spec", "Test", "Tests", ".test", ".spec", NULL};
	for (int i = 0; sufs[i]; i++) {
		size_t k = strlen(sufs[i]);
		bool exact_case = isupper((unsigned char)sufs[i][0]);
		if (stem > k && (exact_case ? !strncmp(base + stem - k, sufs[i], k)
					    : !strncasecmp(base + stem - k, sufs[i], k)))
			return true;
	}
	return false;
}

/* ---- directories ---- */

struct dir_rule {
	const char *const *names;
	const char *phrase;
	enum tier tier;
	const char *label;
};

static const char *const d_test[] = {"test", "tests", "testing", "testdata", "__tests__", "spec", "specs",
				     "fixtures", "t", NULL};
static const char *const d_doc[] = {"doc", "docs", "documentation", "man", "manual", "wiki", NULL};
static const char *const d_vendor[] = {"vendor", "vendored", "third_party", "thirdparty", "third-party",
				       "3rdparty", "external", "extern", "node_modules",
				       "bower_components", "site-packages", NULL};
static const char *const d_gen[] = {"generated", "gen", "autogen", "dist", NULL};
static const char *const d_ci[] = {".github", ".circleci", ".gitlab", ".ci", "ci", ".buildkite", NULL};
static const char *const d_examples[] = {"example", "examples", "sample", "samples", "demo", "demos", NULL};
static const char *const d_data[] = {"data", "dataset", "datasets", "corpus", NULL};
static const char *const d_conf[] = {"config", "configs", "conf", "etc", "settings", "prompts", "templates", NULL};
static const char *const d_scripts[] = {"scripts", "script", NULL};
static const char *const d_cmake[] = {"cmake", NULL};
static const char *const d_src[] = {"src", "source", "lib", "include", "pkg", "internal", "cmd", "app", NULL};

static const struct dir_rule dir_rules[] = {
	{d_vendor, "in a vendored third-party directory", T_CONTENT, "generated"},
	{d_gen, "in a generated-files directory", T_CONTENT, "generated"},
	{d_ci, "in a CI directory", T_NAME, "build"},
	{d_test, "in a test directory", T_TEST, "test"},
	{d_doc, "in a documentation directory", T_DIR, "documentation"},
	{d_cmake, "in a build-system directory", T_TEST, "build"},
	{d_examples, "in an examples directory", T_DIR, "data"},
	{d_data, "in a data directory", T_DIR, "data"},
	{d_conf, "in a configuration directory", T_DIR, "configuration"},
	{d_scripts, "in a scripts directory", T_NONE, NULL},
	{d_src, "in a source directory", T_DIR, "source"},
};

static bool in_list(const char *s, size_t n, const char *const *list)
{
	for (int i = 0; list[i]; i++)
		if (strlen(list[i]) == n && !strncasecmp(s, list[i], n))
			return true;
	return false;
}

/* The role of each of rel's directories that has one, once each. */
static int dir_roles(const char *rel, const char *base, struct dk_buf *out, struct guess *g)
{
	const size_t nr = sizeof dir_rules / sizeof *dir_rules;
	bool said[sizeof dir_rules / sizeof *dir_rules] = {0};
	struct guess dg = {T_NONE, NULL};
	char word[64];
	/* outermost first; of two roles as strong, the nearer directory's wins
	 * (examples/server/configs/x.json is configuration) */
	const char *p = rel;
	while (p < base) {
		const char *e = p;
		while (e < base && *e != '/' && *e != '!')
			e++;
		size_t n = (size_t)(e - p);
		/* "tests" in "../tests/x" and in "a.zip!/tests/x" alike */
		for (size_t r = 0; n && r < nr; r++) {
			if (said[r] || !in_list(p, n, dir_rules[r].names))
				continue;
			said[r] = true;
			snprintf(word, sizeof word, "%.*s", (int)n, p);
			if (dir_rules[r].label && dir_rules[r].tier <= dg.tier)
				dg = (struct guess){dir_rules[r].tier, dir_rules[r].label};
			if (dk_buf_printf(out, "%s%s (%s/)", out->len ? "; " : "", dir_rules[r].phrase, word))
				return -1;
			break;
		}
		p = e;
		while (p < base && (*p == '/' || *p == '!'))
			p++;
	}
	lean(g, dg.tier, dg.label);
	return 0;
}

/* ---- text ---- */

static bool is_alnum_(int c) { return isalnum(c) || c == '_'; }

/* s[0..n) case-insensitively at t[i..] */
static bool at_ci(const char *t, size_t len, size_t i, const char *s)
{
	size_t n = strlen(s);
	return i + n <= len && !strncasecmp(t + i, s, n);
}

static size_t run_of(const char *t, size_t len, size_t i, const char *set, bool alnum)
{
	size_t k = i;
	while (k < len && ((alnum && isalnum((unsigned char)t[k])) || (set && t[k] && strchr(set, t[k]))))
		k++;
	return k - i;
}

/* Tokens with a fixed prefix and a body of known characters. */
static const struct token_rule {
	const char *prefix;
	const char *extra; /* body characters besides letters and digits */
	size_t min_body;
	bool upper_only;   /* body of A-Z0-9 */
	const char *what;
} token_rules[] = {
	{"AKIA", NULL, 16, true, "an AWS access key"},
	{"ASIA", NULL, 16, true, "an AWS access key"},
	{"ghp_", NULL, 30, false, "a GitHub token"},
	{"gho_", NULL, 30, false, "a GitHub token"},
	{"ghu_", NULL, 30, false, "a GitHub token"},
	{"ghs_", NULL, 30, false, "a GitHub token"},
	{"ghr_", NULL, 30, false, "a GitHub token"},
	{"github_pat_", "_", 20, false, "a GitHub token"},
	{"glpat-", "_-", 20, false, "a GitLab token"},
	{"xoxb-", "-", 10, false, "a Slack token"},
	{"xoxp-", "-", 10, false, "a Slack token"},
	{"xoxa-", "-", 10, false, "a Slack token"},
	{"xoxs-", "-", 10, false, "a Slack token"},
	{"AIza", "_-", 35, false, "a Google API key"},
	{"sk_live_", NULL, 16, false, "a Stripe key"},
	{"rk_live_", NULL, 16, false, "a Stripe key"},
	{"sk-", "_-", 32, false, "an API key"},
	{"npm_", NULL, 36, false, "an npm token"},
	{"hooks.slack.com/services/", "/", 20, false, "a Slack webhook"},
};

static bool random_body(const char *s, size_t n)
{
	bool digit = false, seen[256] = {0};
	int distinct = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		digit |= isdigit(c) != 0;
		distinct += !seen[c];
		seen[c] = true;
	}
	return digit && distinct >= 6;
}

static const char *find_token(const char *t, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (!strchr("AgxsrnhG", t[i]) || !t[i])
			continue;
		for (size_t r = 0; r < sizeof token_rules / sizeof *token_rules; r++) {
			const struct token_rule *tr = &token_rules[r];
			size_t k = strlen(tr->prefix);
			if (tr->prefix[0] != t[i] || i + k > len || strncmp(t + i, tr->prefix, k))
				continue;
			/* a token starts a word; the webhook's host may follow "https://" */
			if (i && is_alnum_((unsigned char)t[i - 1]) && tr->prefix[0] != 'h')
				continue;
			size_t b = i + k, m = 0;
			if (tr->upper_only)
				while (b + m < len && (isupper((unsigned char)t[b + m]) || isdigit((unsigned char)t[b + m])))
					m++;
			else
				m = run_of(t, len, b, tr->extra, true);
			/* a real token is random: digits and many characters
			 * ("sk-xxxxxxxx" stands in for one) */
			if (m >= tr->min_body && random_body(t + b, m))
				return tr->what;
		}
	}
	return NULL;
}

static bool find_private_key(const char *t, size_t len)
{
	const char *p = t, *end = t + len;
	while ((p = memmem(p, (size_t)(end - p), "-----BEGIN ", 11))) {
		const char *e = memmem(p + 11, (size_t)(end - p - 11) < 48 ? (size_t)(end - p - 11) : 48, "-----", 5);
		if (e && memmem(p, (size_t)(e - p), "PRIVATE KEY", 11))
			return true;
		p += 11;
	}
	return false;
}

/* header.payload.signature, both JSON parts base64url of "{" */
static bool find_jwt(const char *t, size_t len)
{
	const char *p = t, *end = t + len;
	while ((p = memmem(p, (size_t)(end - p), "eyJ", 3))) {
		size_t i = (size_t)(p - t);
		size_t a = run_of(t, len, i, "_-", true);
		if (a >= 10 && i + a + 4 < len && t[i + a] == '.' && !strncmp(t + i + a + 1, "eyJ", 3)) {
			size_t b = run_of(t, len, i + a + 1, "_-", true);
			size_t j = i + a + 1 + b;
			if (b >= 10 && j + 1 < len && t[j] == '.' && run_of(t, len, j + 1, "_-", true) >= 10)
				return true;
		}
		p += 3;
	}
	return false;
}

/* A value that stands in for a secret rather than being one. */
static bool placeholder(const char *v, size_t n)
{
	static const char *const words[] = {"changeme", "change_me", "change-me", "your_", "your-", "yourpass",
					    "<", "{", "%(", "%s", "xxxx", "****", "....", "placeholder",
					    "redacted", "getenv", "environ", "process.env", "secrets.", "none",
					    "null", "undefined", "false", "true", NULL};
	char low[128];
	size_t k = n < sizeof low - 1 ? n : sizeof low - 1;
	for (size_t i = 0; i < k; i++)
		low[i] = (char)tolower((unsigned char)v[i]);
	low[k] = 0;
	for (int i = 0; words[i]; i++)
		if (strstr(low, words[i]))
			return true;
	for (size_t i = 1; i < k; i++)
		if (low[i] != low[0])
			return false;
	return true; /* one character repeated */
}

/* the words a secret's name ends with: DB_PASSWORD, apiKey, client_secret */
static const char *const secret_keys[] = {"password", "passwd", "pwd", "secret", "secret_key", "secretkey",
					  "secret-key", "api_key", "apikey", "api-key", "access_key",
					  "accesskey", "token", "private_key", "privatekey", "credentials", NULL};

/* name[0..n) ends with one of the words (case-insensitive) */
static bool secret_name(const char *name, size_t n)
{
	for (int k = 0; secret_keys[k]; k++) {
		size_t w = strlen(secret_keys[k]);
		if (n >= w && !strncasecmp(name + n - w, secret_keys[k], w) &&
		    (n == w || !isalpha((unsigned char)name[n - w - 1]) || islower((unsigned char)name[n - w - 1])))
			return true;
	}
	return false;
}

/* a value with the look of a secret: digits, symbols or mixed case, or long */
static bool secret_value(const char *v, size_t n)
{
	bool digit = false, upper = false, lower = false, other = false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		digit |= isdigit(c) != 0;
		upper |= isupper(c) != 0;
		lower |= islower(c) != 0;
		other |= !isalnum(c);
	}
	(void)other;
	/* "not-used", "llama.cpp", "sk-xxx" are words; a secret has a digit
	 * or mixed case */
	return digit || (upper && lower && n >= 8);
}

/* key = "literal" in any file; KEY=literal / key: literal at a line's start
 * where the file is not program code (unquoted in code is an expression). */
static bool find_assignment(const char *t, size_t len, bool code)
{
	size_t ls = 0;
	while (ls < len) {
		size_t le = ls;
		while (le < len && t[le] != '\n')
			le++;
		size_t first = ls;
		while (first < le && (t[first] == ' ' || t[first] == '\t' || t[first] == '"' || t[first] == '\''))
			first++;
		if (at_ci(t, le, first, "export "))
			first += 7;
		for (size_t i = ls; i < le; i++) {
			if (!isalpha((unsigned char)t[i]))
				continue;
			if (i > ls && (is_alnum_((unsigned char)t[i - 1]) || t[i - 1] == '-' || t[i - 1] == '.'))
				continue;
			/* a whole name (DB_PASSWORD, spring.datasource.password) */
			size_t s = i;
			size_t e = i;
			while (e < le && (is_alnum_((unsigned char)t[e]) || t[e] == '-' || t[e] == '.'))
				e++;
			if (!secret_name(t + s, e - s)) {
				i = e;
				continue;
			}
			bool line_start = s == first;
			size_t j = e;
			if (j < le && (t[j] == '"' || t[j] == '\''))
				j++;
			while (j < le && (t[j] == ' ' || t[j] == '\t'))
				j++;
			if (j + 1 < le && t[j] == ':' && t[j + 1] == '=')
				j++;
			if (j >= le || (t[j] != '=' && t[j] != ':') || (j + 1 < le && t[j + 1] == '='))
				{ i = e; continue; }
			j++;
			if (j < le && t[j] == '>')
				j++;
			while (j < le && (t[j] == ' ' || t[j] == '\t'))
				j++;
			if (j >= le)
				{ i = e; continue; }
			size_t vs, vn;
			if (t[j] == '"' || t[j] == '\'') {
				char q = t[j];
				vs = j + 1;
				size_t q2 = vs;
				while (q2 < le && t[q2] != q)
					q2++;
				if (q2 >= le)
					{ i = e; continue; }
				vn = q2 - vs;
			} else {
				if (code || !line_start || strchr("$%{<([`*&", t[j]))
					{ i = e; continue; }
				vs = j;
				size_t q2 = vs;
				while (q2 < le && t[q2] != ' ' && t[q2] != '\t' && t[q2] != '#' && t[q2] != ';')
					q2++;
				vn = q2 - vs;
				if (memchr(t + vs, '(', vn))
					{ i = e; continue; }
			}
			if (vn >= 6 && !memchr(t + vs, ' ', vn) && secret_value(t + vs, vn) && !placeholder(t + vs, vn))
				return true;
			i = e;
		}
		ls = le + 1;
	}
	return false;
}

/* scheme://user:password@host */
static bool find_url_password(const char *t, size_t len)
{
	const char *p = t, *end = t + len;
	while ((p = memmem(p, (size_t)(end - p), "://", 3))) {
		size_t i = (size_t)(p - t) + 3, k = i, colon = 0;
		while (k < len && k - i < 256 && !strchr("/@ \t\n\"'<>", t[k])) {
			if (t[k] == ':' && !colon)
				colon = k;
			k++;
		}
		if (k < len && t[k] == '@' && colon && colon > i && k - colon > 1 &&
		    !placeholder(t + colon + 1, k - colon - 1) && !at_ci(t, k, colon + 1, "pass") &&
		    t[colon + 1] != '$')
			return true;
		p += 3;
	}
	return false;
}

static bool digits_at(const char *t, size_t len, size_t i, size_t n)
{
	if (i + n > len)
		return false;
	for (size_t k = 0; k < n; k++)
		if (!isdigit((unsigned char)t[i + k]))
			return false;
	return true;
}

/* ddd-dd-dddd, not inside a longer run of digits or dashes: how many */
static size_t count_ssn(const char *t, size_t len)
{
	size_t c = 0;
	for (size_t i = 0; i + 11 <= len; i++) {
		if (i && (isdigit((unsigned char)t[i - 1]) || t[i - 1] == '-'))
			continue;
		if (digits_at(t, len, i, 3) && t[i + 3] == '-' && digits_at(t, len, i + 4, 2) && t[i + 6] == '-' &&
		    digits_at(t, len, i + 7, 4) && (i + 11 == len || (!isdigit((unsigned char)t[i + 11]) && t[i + 11] != '-')) &&
		    strncmp(t + i, "000", 3) && strncmp(t + i, "666", 3) && t[i] != '9')
			c++;
	}
	return c;
}

/* Four groups of four digits split by spaces or dashes that pass the Luhn
 * check: how many */
static size_t count_card(const char *t, size_t len)
{
	size_t c = 0;
	for (size_t i = 0; i + 19 <= len; i++) {
		if (i && (isalnum((unsigned char)t[i - 1]) || t[i - 1] == '-'))
			continue;
		char sep = t[i + 4];
		if (sep != ' ' && sep != '-')
			continue;
		int d[16], n = 0;
		bool ok = true;
		for (size_t g = 0; g < 4 && ok; g++) {
			ok = digits_at(t, len, i + g * 5, 4) && (g == 3 || t[i + g * 5 + 4] == sep);
			for (size_t k = 0; ok && k < 4; k++)
				d[n++] = t[i + g * 5 + k] - '0';
		}
		if (!ok || (i + 19 < len && isalnum((unsigned char)t[i + 19])) || d[0] < 3 || d[0] > 6)
			continue;
		int sum = 0;
		for (int k = 0; k < 16; k++) {
			int v = d[15 - k];
			if (k % 2) {
				v *= 2;
				if (v > 9)
					v -= 9;
			}
			sum += v;
		}
		if (sum % 10 == 0)
			c++;
	}
	return c;
}

/* Lines of the first 200 that hold an email address, and lines not blank. */
static void email_lines(const char *t, size_t len, size_t *with, size_t *lines)
{
	*with = *lines = 0;
	size_t ls = 0;
	while (ls < len && *lines < 200) {
		size_t le = ls;
		while (le < len && t[le] != '\n')
			le++;
		bool blank = true, email = false;
		for (size_t i = ls; i < le; i++) {
			blank &= isspace((unsigned char)t[i]) != 0;
			if (email || t[i] != '@' || i == ls || !is_alnum_((unsigned char)t[i - 1]))
				continue;
			size_t k = i + 1, dot = 0;
			while (k < le && (isalnum((unsigned char)t[k]) || t[k] == '-' || t[k] == '.')) {
				if (t[k] == '.' && k + 1 < le && isalpha((unsigned char)t[k + 1]))
					dot = k;
				k++;
			}
			email = dot > i + 1;
		}
		*lines += !blank;
		*with += email;
		ls = le + 1;
	}
}

/* A clinical note: "patient" and three kinds of clinical heading near the top. */
static bool health_record(const char *t, size_t len)
{
	size_t n = len < 4096 ? len : 4096;
	bool patient = false;
	int kinds = 0;
	static const char *const cues[] = {"date of birth", "dob:", "mrn:", "medical record", "diagnosis",
					   "chief complaint", "history of present illness", "physical exam",
					   "assessment and plan", "medications:", "reason for visit",
					   "allergies:", "vital signs", "-year-old", " mg ", "blood pressure",
					   "prescribed", NULL};
	bool seen[24] = {0};
	for (size_t i = 0; i < n; i++) {
		if (!patient && at_ci(t, n, i, "patient"))
			patient = true;
		for (int k = 0; cues[k]; k++)
			if (!seen[k] && at_ci(t, n, i, cues[k])) {
				seen[k] = true;
				kinds++;
			}
	}
	return patient && kinds >= 3;
}

static struct dk_redactor *redactor;
static pthread_once_t redactor_once = PTHREAD_ONCE_INIT;
static void redactor_init(void) { redactor = dk_redactor_new(NULL); }

/* A person's name beside two other kinds of identifier near the top, as the
 * redactor finds them (the same rules that guard what leaves the machine). */
static bool identifiers(const char *t, size_t len)
{
	pthread_once(&redactor_once, redactor_init);
	if (!redactor)
		return false;
	char *red = NULL;
	struct dk_redact_map *m = NULL;
	bool found = false;
	if (dk_redact(redactor, t, len < 4096 ? len : 4096, &red, NULL, &m) == DK_OK &&
	    dk_redact_map_count(m, DK_PHI_NAME)) {
		static const enum dk_phi other[] = {DK_PHI_PHONE, DK_PHI_EMAIL, DK_PHI_SSN, DK_PHI_MRN,
						    DK_PHI_ID, DK_PHI_ADDRESS, DK_PHI_ZIP};
		int kinds = 0;
		for (size_t i = 0; i < sizeof other / sizeof *other; i++)
			kinds += dk_redact_map_count(m, other[i]) > 0;
		found = kinds >= 2;
	}
	free(red);
	dk_redact_map_free(m);
	return found;
}

/* A "generated, do not edit" banner in a comment of the first lines. */
static bool generated_banner(const char *t, size_t len)
{
	static const char *const cues[] = {"generated by", "autogenerated by", "auto-generated by",
					   "automatically generated", "do not edit", "@generated",
					   "code generated", "file is generated", "file was generated",
					   "file is auto-generated", "file was auto-generated",
					   "file is autogenerated", "file has been autogenerated",
					   "file has been generated", "autogenerated file", "auto-generated file",
					   "generated file", NULL};
	size_t ls = 0;
	for (int line = 0; line < 10 && ls < len; line++) {
		size_t le = ls;
		while (le < len && t[le] != '\n')
			le++;
		size_t i = ls;
		while (i < le && (t[i] == ' ' || t[i] == '\t'))
			i++;
		bool comment = i < le && (strchr("#*;%", t[i]) || at_ci(t, le, i, "//") || at_ci(t, le, i, "/*") ||
					  at_ci(t, le, i, "<!--") || at_ci(t, le, i, "--") || at_ci(t, le, i, "rem "));
		for (size_t k = i; comment && k < le; k++)
			for (int c = 0; cues[c]; c++)
				if (at_ci(t, le, k, cues[c]))
					return true;
		ls = le + 1;
	}
	return false;
}

/* the interpreter of a "#!" line: "sh" of "#!/bin/sh", "python3" of
 * "#!/usr/bin/env python3" */
static int shebang(const char *t, size_t len, struct dk_buf *out, struct guess *g)
{
	if (len < 3 || t[0] != '#' || t[1] != '!')
		return 0;
	size_t e = 2;
	while (e < len && t[e] != '\n' && e < 128)
		e++;
	char line[128];
	snprintf(line, sizeof line, "%.*s", (int)(e - 2), t + 2);
	char *tok = strtok(line, " \t\r");
	const char *interp = NULL;
	while (tok) {
		const char *b = strrchr(tok, '/');
		b = b ? b + 1 : tok;
		if (strcmp(b, "env") && *b != '-') {
			interp = b;
			break;
		}
		tok = strtok(NULL, " \t\r");
	}
	if (!interp)
		return 0;
	lean(g, T_SCRIPT, "source");
	return dk_buf_printf(out, "%sa script run by %s", out->len ? "; " : "", interp);
}

/* Credits name people with their addresses in public: a licence, an
 * AUTHORS file, a copyright notice. */
static bool credits(const char *t, size_t len, const struct guess *g, bool doc_dir)
{
	if (doc_dir || (g->label && !strcmp(g->label, "documentation")))
		return true;
	size_t n = len < 4096 ? len : 4096;
	for (size_t i = 0; i < n; i++)
		if (at_ci(t, n, i, "copyright"))
			return true;
	return false;
}

static int secrets(const char *t, size_t len, bool code, bool doc_dir, struct dk_buf *out, struct guess *g)
{
	const char *what = find_private_key(t, len) ? "a private key" : find_token(t, len);
	if (!what && find_jwt(t, len))
		what = "a JSON web token";
	if (!what && find_url_password(t, len))
		what = "a URL with a password";
	if (!what && find_assignment(t, len, code))
		what = "a password or key written out";
	if (what)
		lean(g, T_CONTENT, "sensitive");
	if (what && dk_buf_printf(out, "%scontains a secret (%s)", out->len ? "; " : "", what))
		return -1;
	/* code quotes an identifier's format now and then; data holds them */
	const char *pd = count_ssn(t, len) >= (code ? 2u : 1u) ? "social security numbers"
			 : count_card(t, len) >= (code ? 2u : 1u) ? "payment card numbers"
			 : health_record(t, len) ? "a patient's health record"
			 : NULL;
	/* code and credits name their authors; a list of people is data */
	bool weak = !pd && !code && !credits(t, len, g, doc_dir);
	if (weak && identifiers(t, len))
		pd = "names with contact details or identifiers";
	/* a list of people: one address a line, line after line */
	size_t em = 0, lines = 0;
	if (!pd && weak)
		email_lines(t, len, &em, &lines);
	if (em < 5 || em * 3 < lines)
		em = 0;
	if (pd || em >= 5)
		lean(g, T_CONTENT, "sensitive");
	if (pd)
		return dk_buf_printf(out, "%scontains personal data (%s)", out->len ? "; " : "", pd);
	if (em >= 5)
		return dk_buf_printf(out, "%scontains personal data (a list of email addresses)", out->len ? "; " : "");
	return 0;
}

/* {"$schema": ...}, or "$schema: ..." as JSON reads once extracted: a
 * settings file that names the schema it follows */
static bool json_with_schema(const char *t, size_t len)
{
	size_t n = len < 512 ? len : 512;
	return memmem(t, n, "\"$schema\"", 9) || (n >= 8 && !memcmp(t, "$schema:", 8)) ||
	       memmem(t, n, "\n$schema:", 9);
}

/* {{name}} placeholders: a template a program fills in */
static bool placeholders(const char *t, size_t len)
{
	size_t n = len < 4096 ? len : 4096;
	const char *p = memmem(t, n, "{{", 2);
	if (!p)
		return false;
	size_t k = (size_t)(p - t) + 2;
	while (k < n && (isalnum((unsigned char)t[k]) || t[k] == '_' || t[k] == ' ' || t[k] == '.'))
		k++;
	return k + 1 < n && t[k] == '}' && t[k + 1] == '}';
}

/* build.sh, install-deps.sh, release.py, gen-tables.py: scripts that
 * build, install, ship or generate code; test.sh, lint.sh: what CI runs */
static bool build_script_name(const char *base)
{
	static const char *const w[] = {"build", "install", "deploy", "release", "bootstrap", "setup",
					"package", "configure", "ci.", "ci-", "ci_", "make", "compile",
					"gen-", "gen_", "generate", NULL};
	for (int i = 0; w[i]; i++)
		if (!strncasecmp(base, w[i], strlen(w[i])))
			return true;
	static const char *const stem[] = {"test", "tests", "run-tests", "run_tests", "check", "lint", "ci", NULL};
	const char *dot = strchr(base, '.');
	size_t n = dot ? (size_t)(dot - base) : strlen(base);
	for (int i = 0; stem[i]; i++)
		if (strlen(stem[i]) == n && !strncasecmp(base, stem[i], n))
			return true;
	return false;
}

int dk_filehints_describe(const char *rel, const char *text, size_t len, struct dk_buf *out)
{
	const char *base = base_of(rel);
	struct dk_buf kind = {0};
	struct guess g = {T_NONE, NULL};
	bool code = false;
	int rc = -1;
	if (name_kind(base, &kind, &code, &g))
		goto out;
	/* the directories' guess alone, to know a documentation directory */
	struct dk_buf scratch = {0};
	struct guess gd = {T_NONE, NULL};
	int drc = dir_roles(rel, base, &scratch, &gd);
	dk_buf_free(&scratch);
	bool doc_dir = !drc && gd.label && !strcmp(gd.label, "documentation");
	if (text && secrets(text, len, code, doc_dir, out, &g))
		goto out;
	if (text && generated_banner(text, len)) {
		lean(&g, T_CONTENT, "generated");
		if (dk_buf_printf(out, "%ssays it is generated", out->len ? "; " : ""))
			goto out;
	}
	if (kind.len && dk_buf_printf(out, "%s%s", out->len ? "; " : "", kind.data))
		goto out;
	if (!code && text && json_with_schema(text, len)) {
		lean(&g, T_KIND, "configuration");
		if (dk_buf_printf(out, "%snames its JSON schema (a settings file)", out->len ? "; " : ""))
			goto out;
	} else if (!code && text && placeholders(text, len)) {
		lean(&g, T_KIND, "configuration");
		if (dk_buf_printf(out, "%sa template with {{placeholders}}", out->len ? "; " : ""))
			goto out;
	}
	if (test_name(base)) {
		lean(&g, T_TEST, "test");
		if (dk_buf_printf(out, "%sa test file name", out->len ? "; " : ""))
			goto out;
	}
	bool script = text && len > 2 && text[0] == '#' && text[1] == '!';
	if ((code || script) && build_script_name(base)) {
		lean(&g, T_NAME, "build");
		if (dk_buf_printf(out, "%sa build script name", out->len ? "; " : ""))
			goto out;
	}
	if (dir_roles(rel, base, out, &g))
		goto out;
	if (text && shebang(text, len, out, &g))
		goto out;
	if (dk_buf_printf(out, "%s", out->len ? "" : "nothing known") ||
	    dk_buf_printf(out, " | Rules: %s", g.label ? g.label : "none"))
		goto out;
	rc = 0;
out:
	dk_buf_free(&kind);
	return rc;
}

const char *dk_filehints_rel(const char *path, const char *const *inputs, size_t n_inputs)
{
	for (size_t i = 0; i < n_inputs; i++) {
		const char *in = inputs[i];
		size_t n = strlen(in);
		while (n > 1 && in[n - 1] == '/')
			n--;
		if (!n || strncmp(path, in, n) || path[n] != '/')
			continue;
		/* from the input's own name: "tests" of "tests/a.c" counts */
		size_t b = n;
		while (b > 0 && in[b - 1] != '/')
			b--;
		if (n - b == 1 && in[b] == '.')
			b = n + 1;
		else if (n - b == 2 && in[b] == '.' && in[b + 1] == '.')
			b = n + 1;
		return path + b;
	}
	return path;
}

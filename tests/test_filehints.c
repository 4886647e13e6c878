/* File hints: secrets and personal data found, look-alikes left alone, the
 * rules' guess by name, directory and banner, and the path they read.  The
 * secrets are split across string literals so that this file holds none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/filehints.h"
#include "testutil.h"

static char *hints(const char *rel, const char *text)
{
	struct dk_buf b = {0};
	assert_int_equal(dk_filehints_describe(rel, text, text ? strlen(text) : 0, &b), 0);
	return dk_buf_steal(&b);
}

/* the rules' guess: what follows " | Rules: " */
static void expect_guess(const char *rel, const char *text, const char *label)
{
	char *h = hints(rel, text);
	const char *r = strstr(h, " | Rules: ");
	if (!r || strcmp(r + 10, label))
		fail_msg("%s: expected %s, got '%s'", rel, label, h);
	free(h);
}

static void expect_phrase(const char *rel, const char *text, const char *phrase)
{
	char *h = hints(rel, text);
	if (!strstr(h, phrase))
		fail_msg("%s: expected '%s' in '%s'", rel, phrase, h);
	free(h);
}

static void expect_no_phrase(const char *rel, const char *text, const char *phrase)
{
	char *h = hints(rel, text);
	if (strstr(h, phrase))
		fail_msg("%s: did not expect '%s' in '%s'", rel, phrase, h);
	free(h);
}

static void test_secrets(void **state)
{
	(void)state;
	static const struct {
		const char *rel, *text, *what;
	} hit[] = {
		{"config/prod.yaml", "database:\n  host: db\n  password: S3cr3t" "Passw0rd!\n", "a password or key written out"},
		{"deploy/run.sh", "#!/bin/sh\nexport DB_PASS" "WORD=hunter2x\n./app\n", "a password or key written out"},
		{"app/settings.py", "DEBUG = False\nSECRET_" "KEY = \"django-insecure-8s7d6f5g4h3j2k1l\"\n", "a password or key written out"},
		{"src/client.js", "const apiKey = 'k3y" "-9a8b7c6d5e4f';\n", "a password or key written out"},
		{"keys/deploy.txt", "-----BEGIN RSA PRIV" "ATE KEY-----\nMIIEow\n-----END RSA PRIV" "ATE KEY-----\n", "a private key"},
		{"ops/id", "-----BEGIN OPENSSH PRIV" "ATE KEY-----\nb3BlbnNzaA\n", "a private key"},
		{"src/aws.py", "AWS_ACCESS_KEY_ID = \"AK" "IAIOSFODNN7EXAMPLE\"\n", "an AWS access key"},
		{"src/gh.go", "var t = \"gh" "p_abcdefghijklmnopqrstuvwxyz0123456789\"\n", "a GitHub token"},
		{"notify.yml", "url: https://hooks.slack.com/ser" "vices/T024BE7LD/B01A2B3C4D5/a1b2c3d4e5f6g7h8i9j0k1l2\n", "a Slack webhook"},
		{"docker-compose.yml", "environment:\n  DATABASE_URL: postgres://admin:Tr0ub" "4dor@db:5432/app\n", "a URL with a password"},
		{"auth.txt", "Authorization: Bearer ey" "JhbGciOiJIUzI1NiJ9.ey" "JzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N\n", "a JSON web token"},
	};
	for (size_t i = 0; i < sizeof hit / sizeof *hit; i++) {
		char want[128];
		snprintf(want, sizeof want, "contains a secret (%s)", hit[i].what);
		expect_phrase(hit[i].rel, hit[i].text, want);
		expect_guess(hit[i].rel, hit[i].text, "sensitive");
	}
	/* by name alone */
	expect_guess(".env", "LOG_LEVEL=debug\n", "sensitive");
	expect_guess("certs/server.pem", "xx\n", "sensitive");
	expect_guess("home/.ssh/id_ed25519", "xx\n", "sensitive");
}

static void test_not_secrets(void **state)
{
	(void)state;
	static const struct {
		const char *rel, *text;
	} miss[] = {
		{"src/auth.c", "const char *password = argv[1];\nif (!password) return 1;\n"},
		{"src/lex.py", "token = tokens[i]\nsecret = compute_secret(x)\n"},
		{"src/tok.c", "struct token *token = next_token(t);\n"},
		{"config/app.yaml", "db:\n  password: ${DB_PASSWORD}\n  token: \"{{ vault_token }}\"\n"},
		{".github/workflows/ci.yml", "env:\n  TOKEN: ${{ secrets.GITHUB_TOKEN }}\n"},
		{".env.example", "API_KEY=your_api_key_here\nPASSWORD=changeme\n"},
		{"README.md", "Connect with postgres://user:password@localhost/db and a token: <your token>.\n"},
		{"docs/tls.md", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
		{"labels.json", "{\"src/engine/text/tokenizer.c\": \"source\", \"x\": \"test\"}\n"},
		{"src/schema.c", "{\"password\", \"string\"},\n"},
		{"docs/form.md", "password: ******\n"},
		/* stand-ins in documentation and examples */
		{"docs/server.md", "client = OpenAI(base_url=\"http://localhost/v1\", api_key=\"sk-xxx\")\n"},
		{"examples/chat.py", "client = OpenAI(api_key=\"not-used\")\nother = X(api_key=\"llama.cpp\")\n"},
		{"nb.ipynb", "\"OPENAI_API_KEY\": \"sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"\n"},
	};
	for (size_t i = 0; i < sizeof miss / sizeof *miss; i++) {
		expect_no_phrase(miss[i].rel, miss[i].text, "contains a secret");
		expect_no_phrase(miss[i].rel, miss[i].text, "Rules: sensitive");
	}
	expect_guess(".env.example", "API_KEY=your_api_key_here\n", "configuration");
}

static void test_personal_data(void **state)
{
	(void)state;
	expect_phrase("data/customers.csv", "name,ssn\nJohn Smith,123-45-" "6789\n", "social security numbers");
	expect_phrase("data/orders.csv", "card\n4111 1111 1111 " "1111\n", "payment card numbers");
	expect_phrase("notes/visit.txt",
		      "CHIEF COMPLAINT: cough.\nThe patient is a 40-year-old man.\nMEDICATIONS: none.\n"
		      "ASSESSMENT AND PLAN: rest.\n",
		      "a patient's health record");
	expect_phrase("crm/contact.txt",
		      "Patient: Quentin Zabriskie\nPhone: (555) 867-5309\nEmail: qz@example.org\n",
		      "contains personal data");
	/* an SSN's format quoted once in code; news that names people; a receipt */
	expect_no_phrase("src/redact.h", "/* SSN 123-45-" "6789 */\n", "personal data");
	expect_no_phrase("news/politics.txt",
			 "Mr Blair told MPs on Tuesday that the plan would go ahead, Gordon Brown said.\n",
			 "personal data");
	expect_no_phrase("receipts/shop.txt", "GREEN LEAF GROCERS\n12 Market Street\nTel 01234 567890\nTOTAL 9.10\n",
			 "personal data");
	expect_no_phrase("src/mail.py", "# a@b.org c@d.org e@f.org g@h.org i@j.org k@l.org\n", "personal data");
}

static void test_kinds(void **state)
{
	(void)state;
	expect_guess("src/main.go", "package main\n", "source");
	expect_guess("lib/parse.c", "int x;\n", "source");
	expect_guess("tests/test_parse.py", "def test_x(): pass\n", "test");
	expect_guess("pkg/parse_test.go", "package pkg\n", "test");
	expect_guess("tests/helpers/util.py", "x = 1\n", "test");
	expect_guess("tests/README.md", "# Tests\n", "documentation");
	expect_guess("tests/CMakeLists.txt", "add_test(x)\n", "build");
	expect_guess("Makefile", "all:\n\tcc x.c\n", "build");
	expect_guess(".github/workflows/ci.yml", "on: push\n", "build");
	expect_guess("scripts/release.py", "import sys\n", "build");
	expect_guess("Dockerfile", "FROM debian\n", "build");
	expect_guess("docs/guide.md", "# Guide\n", "documentation");
	expect_guess("LICENSE", "MIT License\n", "documentation");
	expect_guess("man/tool.1", ".TH TOOL 1\n", "documentation");
	expect_guess("config/app.yaml", "port: 80\n", "configuration");
	expect_guess(".gitignore", "build/\n", "configuration");
	expect_guess("pipelines/x.json", "{\"$schema\": \"./s.json\", \"name\": \"x\"}\n", "configuration");
	expect_guess("prompts/ask.txt", "Answer the question.\n{{text}}\n", "configuration");
	expect_guess("data/sales.csv", "a,b\n1,2\n", "data");
	expect_guess("examples/input.txt", "Dear reader,\n", "data");
	expect_guess("package-lock.json", "{}\n", "generated");
	expect_guess("vendor/lib/x.c", "int x;\n", "generated");
	expect_guess("src/tables.c", "/* Generated by gen.py. DO NOT EDIT. */\nint t[1];\n", "generated");
	expect_guess("notes.txt", "Some words.\n", "none");
	expect_guess("tools/run", "#!/usr/bin/env python3\nprint(1)\n", "source");
	expect_phrase("tools/run", "#!/usr/bin/env python3\n", "a script run by python3");
	/* a generator that prints a banner is not generated itself */
	expect_guess("scripts/gen-tables.py", "import sys\n\nprint('/* Generated by gen.py. DO NOT EDIT. */')\n", "build");
	/* a scripts/ directory holds tools as often as build steps: the name decides */
	expect_guess("scripts/tool_bench.py", "import sys\n", "source");
	expect_guess("scripts/test.sh", "#!/bin/sh\nctest\n", "build");
	/* "auto-generated" said of something else is no banner */
	expect_guess("src/tabs.ts", "/** Label for chats without an auto-generated title. */\nexport const X = 1;\n",
		     "source");
	expect_guess("flake.nix", "{ inputs = {}; }\n", "build");
	expect_guess("requirements/requirements-dev.txt", "pytest\n", "build");
	/* a tool's own settings file stays configuration inside tests/ */
	expect_guess("tests/.gitignore", "*.log\n", "configuration");
	expect_guess("tests/fixtures/app.yaml", "port: 80\n", "test");
	/* the nearer of two directories as telling */
	expect_guess("examples/server/configs/model.json", "{\"model\": \"x\"}\n", "configuration");
	expect_guess("examples/notebooks/Intro.ipynb", "{\"cells\": []}\n", "source");
	expect_guess("PKG-INFO", "Metadata-Version: 2.1\n", "generated");
	/* "install" names a guide only as a text file */
	expect_guess("scripts/install-deps.sh", "#!/bin/sh\napt-get install x\n", "build");
	expect_guess("INSTALL.md", "Run make.\n", "documentation");
}

static void test_rel(void **state)
{
	(void)state;
	const char *dot[] = {"."};
	assert_string_equal(dk_filehints_rel("./src/a.c", dot, 1), "src/a.c");
	const char *repo[] = {"work/repo/"};
	assert_string_equal(dk_filehints_rel("work/repo/tests/a.c", repo, 1), "repo/tests/a.c");
	/* a directory above the input plays no part: /tmp/test/ is not a test directory */
	const char *abs[] = {"/tmp/test/proj"};
	assert_string_equal(dk_filehints_rel("/tmp/test/proj/src/a.c", abs, 1), "proj/src/a.c");
	expect_guess(dk_filehints_rel("/tmp/test/proj/src/a.c", abs, 1), "int x;\n", "source");
	const char *up[] = {".."};
	assert_string_equal(dk_filehints_rel("../x/a.c", up, 1), "x/a.c");
	/* paths from a list on stdin, and a file named as an operand: all of it */
	const char *list[] = {"-"};
	assert_string_equal(dk_filehints_rel("tests/a.c", list, 1), "tests/a.c");
	const char *file[] = {"tests/a.c"};
	assert_string_equal(dk_filehints_rel("tests/a.c", file, 1), "tests/a.c");
	/* archive members: directories inside the archive count */
	expect_guess("a.zip!/tests/x.json", "{}\n", "test");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_not_secrets),
		cmocka_unit_test(test_personal_data),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_rel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

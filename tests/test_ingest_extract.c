/* ingest extractors: real text out of every format family.  Office and
 * EPUB files are zipped at test time with libarchive, a PDF is written by
 * hand, everything else is inline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "docket/ingest.h"
#include "ingest/extract.h"
#include "ingest/glob.h"
#include "testutil.h"
#include "util/buf.h"

struct ent {
	const char *name;
	const char *data;
};

static la_ssize_t wr_cb(struct archive *a, void *ud, const void *p, size_t n)
{
	(void)a;
	return dk_buf_append(ud, p, n) ? -1 : (la_ssize_t)n;
}

static struct dk_buf make_zip(const struct ent *e, size_t n)
{
	struct dk_buf b = {0};
	struct archive *a = archive_write_new();
	assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open(a, &b, NULL, wr_cb, NULL), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *x = archive_entry_new();
		archive_entry_set_pathname(x, e[i].name);
		archive_entry_set_filetype(x, AE_IFREG);
		archive_entry_set_perm(x, 0644);
		archive_entry_set_size(x, (la_int64_t)strlen(e[i].data));
		assert_int_equal(archive_write_header(a, x), ARCHIVE_OK);
		archive_write_data(a, e[i].data, strlen(e[i].data));
		archive_entry_free(x);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return b;
}

/* Extracts with libmagic detection; returns malloc'd text or NULL (reason set). */
static char *ex(const void *data, size_t len, const char *name, const char **reason)
{
	char *text = NULL, err[512];
	size_t tl;
	const char *r = NULL;
	enum dk_status st = dk_extract_buffer(data, len, name, NULL, &text, &tl, &r, err, sizeof err);
	if (reason)
		*reason = r;
	if (st != DK_OK) {
		assert_non_null(r);
		assert_non_null(strstr(err, name)); /* messages name the file */
		return NULL;
	}
	assert_int_equal(strlen(text), tl);
	return text;
}

static char *ex_s(const char *s, const char *name)
{
	char *t = ex(s, strlen(s), name, NULL);
	assert_non_null(t);
	return t;
}

#define assert_contains(hay, needle)                                                         \
	do {                                                                                 \
		if (!strstr((hay), (needle))) {                                              \
			fprintf(stderr, "missing [%s] in:\n---\n%s\n---\n", (needle), (hay)); \
			fail();                                                              \
		}                                                                            \
	} while (0)

static void test_text_encodings(void **state)
{
	(void)state;
	char *t = ex_s("plain ascii\r\nwith CRLF\rand CR\n", "a.txt");
	assert_string_equal(t, "plain ascii\nwith CRLF\nand CR\n");
	free(t);
	/* Latin-1 (the BBC article's case): a bare 0xA3 pound sign */
	const char lat[] = "It cost \xa3" "5 at the caf\xe9 na\xefve.\n";
	t = ex(lat, strlen(lat), "l.txt", NULL);
	assert_string_equal(t, "It cost \xc2\xa3" "5 at the caf\xc3\xa9 na\xc3\xafve.\n");
	free(t);
	/* Windows-1252 curly quotes and euro */
	const char w[] = "\x93quoted\x94 costs \x80" "3, isn\x92t it? Plenty of plain ASCII around it.\n";
	t = ex(w, strlen(w), "w.txt", NULL);
	assert_contains(t, "\xe2\x80\x9cquoted\xe2\x80\x9d costs \xe2\x82\xac" "3, isn\xe2\x80\x99t");
	free(t);
	/* UTF-16LE with a byte-order mark */
	const char u16[] = "\xff\xfeh\0i\0 \0\xe9\0\n\0";
	t = ex(u16, sizeof u16 - 1, "u16.txt", NULL);
	assert_string_equal(t, "hi \xc3\xa9\n");
	free(t);
	/* UTF-8 passes through; BOM dropped */
	t = ex_s("\xef\xbb\xbf\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e text\n", "j.txt");
	assert_string_equal(t, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e text\n");
	free(t);
	/* markdown and source code are text */
	t = ex_s("# Title\n\nSome *markdown* here.\n", "r.md");
	assert_string_equal(t, "# Title\n\nSome *markdown* here.\n");
	free(t);
	t = ex_s("#include <stdio.h>\nint main(void) { return 0; }\n", "m.c");
	assert_contains(t, "int main(void)");
	free(t);
	/* binary and empty are skipped with their reasons */
	unsigned char png[64] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
	const char *reason;
	assert_null(ex(png, sizeof png, "x.png", &reason));
	assert_string_equal(reason, "binary");
	unsigned char elf[128] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
	assert_null(ex(elf, sizeof elf, "prog", &reason));
	assert_string_equal(reason, "binary");
}

static void test_html_xml(void **state)
{
	(void)state;
	const char *html = "<!DOCTYPE html><html><head><title>The Title</title>"
			   "<style>p { color: red }</style><script>var x = '<p>not text</p>';</script></head>"
			   "<body><h1>Head&amp;line</h1><p>Para one&nbsp;&copy; 2024 &#x263A; &#9731; &bogus; AT&T</p>"
			   "<ul><li>item1</li><li>item2</li></ul><!-- a comment -->"
			   "<p>Last <b>bold</b>   word<br>next line</p><table><tr><td>c1</td><td>c2</td></tr></table>"
			   "<pre>keep   this\n  spacing</pre></body></html>";
	char *t = ex_s(html, "page.html");
	assert_contains(t, "The Title");
	assert_contains(t, "Head&line\n\nPara one \xc2\xa9 2024 \xe2\x98\xba \xe2\x98\x83 &bogus; AT&T");
	assert_contains(t, "item1\nitem2");
	assert_contains(t, "Last bold word\nnext line");
	assert_contains(t, "c1 c2");
	assert_contains(t, "keep   this\n  spacing");
	assert_null(strstr(t, "color"));
	assert_null(strstr(t, "not text"));
	assert_null(strstr(t, "comment"));
	assert_null(strstr(t, "<"));
	free(t);
	/* XHTML */
	t = ex_s("<?xml version=\"1.0\"?><html xmlns=\"http://www.w3.org/1999/xhtml\"><body><p>x&lt;y</p><p>z</p></body></html>",
		 "p.xhtml");
	assert_contains(t, "x<y\n\nz");
	free(t);
	/* XML: elements become lines, CDATA kept */
	t = ex_s("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<people><person id=\"1\"><name>Alice</name><age>30</age>"
		 "</person><note><![CDATA[raw <text> & more]]></note></people>\n",
		 "people.xml");
	assert_contains(t, "Alice\n30");
	assert_contains(t, "raw <text> & more");
	assert_null(strstr(t, "id="));
	free(t);
}

static void test_csv_json(void **state)
{
	(void)state;
	char *t = ex_s("name,age,city\nAlice,30,\"Paris, FR\"\nBob,25,\"Multi\nline \"\"quoted\"\"\"\n\n", "people.csv");
	assert_string_equal(t, "name: Alice\nage: 30\ncity: Paris, FR\n\nname: Bob\nage: 25\ncity: Multi line \"quoted\"");
	free(t);
	/* no header row (numbers in the first row): lines of values */
	t = ex_s("72,25,326,TAN WOON YANN\n50,82,440,BOOK TA, SDN BND\n", "box.csv");
	assert_string_equal(t, "72, 25, 326, TAN WOON YANN\n50, 82, 440, BOOK TA, SDN BND");
	free(t);
	t = ex_s("id\tword\n1\tone\n2\ttwo\n", "w.tsv");
	assert_string_equal(t, "id: 1\nword: one\n\nid: 2\nword: two");
	free(t);
	t = ex_s("{\"name\": \"Alice\", \"tags\": [\"a\", \"b\"], \"address\": {\"city\": \"Paris\", \"zip\": 75001},"
		 " \"ok\": true, \"none\": null, \"empty\": []}",
		 "a.json");
	assert_string_equal(t, "name: Alice\ntags:\n  - a\n  - b\naddress:\n  city: Paris\n  zip: 75001\nok: true\nnone: null\nempty: []");
	free(t);
	t = ex_s("{\"q\": \"first\"}\n{\"q\": \"second\", \"n\": 2}\nnot json\n", "b.jsonl");
	assert_string_equal(t, "q: first\n\nq: second\nn: 2\n\nnot json");
	free(t);
	/* broken JSON stays readable as text */
	t = ex_s("{\"a\": 1, \"b\": [1, 2", "c.json");
	assert_contains(t, "\"b\": [1, 2");
	free(t);
}

static void test_rtf_eml(void **state)
{
	(void)state;
	const char *rtf = "{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\froman Times New Roman;}}"
			  "{\\colortbl;\\red0\\green0\\blue0;}{\\*\\generator Hand 1.0;}{\\info{\\title Hidden}}"
			  "\\f0\\fs24 Hello \\b world\\b0 !\\par Caf\\'e9 costs \\u8364? 3\\tab x\\par "
			  "Braces \\{ and \\} and \\\\ slash\\line done}";
	char *t = ex_s(rtf, "doc.rtf");
	assert_string_equal(t, "Hello world!\nCaf\xc3\xa9 costs \xe2\x82\xac 3\tx\nBraces { and } and \\ slash\ndone");
	free(t);

	const char *eml = "From: Alice <alice@example.com>\r\n"
			  "To: bob@example.com\r\n"
			  "Subject: =?utf-8?B?SGVsbG8g4pyT?= and\r\n more\r\n"
			  "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
			  "X-Junk: not shown\r\n"
			  "MIME-Version: 1.0\r\n"
			  "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
			  "preamble\r\n--outer\r\n"
			  "Content-Type: multipart/alternative; boundary=alt\r\n\r\n"
			  "--alt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
			  "Caf=C3=A9 soft=\r\nbreak in plain.\r\n"
			  "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>HTML version</p>\r\n--alt--\r\n"
			  "--outer\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n"
			  "U2Vjb25kIHBhcnQgd2l0aCDpLg==\r\n"
			  "--outer\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\n"
			  "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--outer--\r\n";
	t = ex_s(eml, "mail.eml");
	assert_contains(t, "From: Alice <alice@example.com>\nTo: bob@example.com\nDate: Mon, 1 Jan 2024");
	assert_contains(t, "Subject: Hello \xe2\x9c\x93 and more");
	assert_contains(t, "Caf\xc3\xa9 softbreak in plain.");
	assert_contains(t, "Second part with \xc3\xa9.");
	assert_contains(t, "[attachment: r.pdf]");
	assert_null(strstr(t, "HTML version")); /* the alternative's plain part wins */
	assert_null(strstr(t, "X-Junk"));
	free(t);
}

static void test_office_epub(void **state)
{
	(void)state;
	const struct ent docx[] = {
		{"[Content_Types].xml", "<?xml version=\"1.0\"?><Types/>"},
		{"word/document.xml",
		 "<?xml version=\"1.0\"?><w:document xmlns:w=\"urn:w\"><w:body><w:p><w:r><w:t>Hello</w:t></w:r>"
		 "<w:r><w:t xml:space=\"preserve\"> docx world</w:t></w:r></w:p><w:p><w:r><w:instrText>PAGE</w:instrText>"
		 "<w:t>Second &amp; last</w:t><w:tab/><w:t>tabbed</w:t></w:r></w:p></w:body></w:document>"},
	};
	struct dk_buf z = make_zip(docx, 2);
	char *t = ex(z.data, z.len, "r.docx", NULL);
	assert_non_null(t);
	assert_string_equal(t, "Hello docx world\nSecond & last\ttabbed");
	free(t);
	dk_buf_free(&z);

	const struct ent xlsx[] = {
		{"[Content_Types].xml", "<Types/>"},
		{"xl/sharedStrings.xml", "<sst><si><t>name</t></si><si><r><t>Ali</t></r><r><t>ce</t></r></si></sst>"},
		{"xl/worksheets/sheet1.xml",
		 "<worksheet><sheetData><row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c><c r=\"B1\" t=\"inlineStr\"><is><t>age</t></is></c>"
		 "</row><row r=\"2\"><c r=\"A2\" t=\"s\"><v>1</v></c><c r=\"B2\"><v>30</v></c><c r=\"C2\" t=\"b\"><v>1</v></c>"
		 "</row></sheetData></worksheet>"},
	};
	z = make_zip(xlsx, 3);
	t = ex(z.data, z.len, "s.xlsx", NULL);
	assert_non_null(t);
	assert_string_equal(t, "name\tage\nAlice\t30\tTRUE");
	free(t);
	dk_buf_free(&z);

	const char *slide = "<p:sld xmlns:a=\"urn:a\" xmlns:p=\"urn:p\"><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>%s</a:t>"
			    "</a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>";
	char s1[512], s2[512], s10[512];
	snprintf(s1, sizeof s1, slide, "Slide one");
	snprintf(s2, sizeof s2, slide, "Slide two");
	snprintf(s10, sizeof s10, slide, "Slide ten");
	const struct ent pptx[] = {{"[Content_Types].xml", "<Types/>"},
				   {"ppt/slides/slide10.xml", s10},
				   {"ppt/slides/slide2.xml", s2},
				   {"ppt/slides/slide1.xml", s1},
				   {"ppt/slides/_rels/slide1.xml.rels", "<Relationships/>"}};
	z = make_zip(pptx, 5);
	t = ex(z.data, z.len, "d.pptx", NULL);
	assert_non_null(t);
	assert_string_equal(t, "Slide one\n\nSlide two\n\nSlide ten");
	free(t);
	dk_buf_free(&z);

	const struct ent odt[] = {
		{"mimetype", "application/vnd.oasis.opendocument.text"},
		{"content.xml",
		 "<office:document-content xmlns:office=\"o\" xmlns:text=\"t\"><office:body><office:text>"
		 "<text:h text:outline-level=\"1\">Title</text:h><text:p>Para<text:s text:c=\"2\"/>two<text:tab/>x</text:p>"
		 "<text:p>Line<text:line-break/>break &amp; more</text:p></office:text></office:body></office:document-content>"},
	};
	z = make_zip(odt, 2);
	t = ex(z.data, z.len, "w.odt", NULL);
	assert_non_null(t);
	assert_string_equal(t, "Title\nPara  two\tx\nLine\nbreak & more");
	free(t);
	dk_buf_free(&z);

	const struct ent ods[] = {
		{"mimetype", "application/vnd.oasis.opendocument.spreadsheet"},
		{"content.xml",
		 "<office:document-content><office:body><office:spreadsheet><table:table table:name=\"S\">"
		 "<table:table-row><table:table-cell><text:p>city</text:p></table:table-cell><table:table-cell><text:p>pop</text:p>"
		 "</table:table-cell></table:table-row><table:table-row><table:table-cell><text:p>Oslo</text:p></table:table-cell>"
		 "<table:table-cell office:value=\"700000\"><text:p>700000</text:p></table:table-cell></table:table-row>"
		 "</table:table></office:spreadsheet></office:body></office:document-content>"},
	};
	z = make_zip(ods, 2);
	t = ex(z.data, z.len, "c.ods", NULL);
	assert_non_null(t);
	assert_contains(t, "city \tpop");
	assert_contains(t, "Oslo \t700000");
	free(t);
	dk_buf_free(&z);

	const struct ent epub[] = {
		{"mimetype", "application/epub+zip"},
		{"META-INF/container.xml",
		 "<container><rootfiles><rootfile full-path=\"OEBPS/content.opf\" media-type=\"application/oebps-package+xml\"/>"
		 "</rootfiles></container>"},
		{"OEBPS/ch2.xhtml", "<html><body><h1>Chapter Two</h1><p>The end.</p></body></html>"},
		{"OEBPS/content.opf",
		 "<package><manifest><item id=\"c1\" href=\"ch1.xhtml\" media-type=\"application/xhtml+xml\"/>"
		 "<item id=\"c2\" href=\"ch2.xhtml\" media-type=\"application/xhtml+xml\"/></manifest>"
		 "<spine><itemref idref=\"c1\"/><itemref idref=\"c2\"/></spine></package>"},
		{"OEBPS/ch1.xhtml", "<html><body><h1>Chapter One</h1><p>It began &amp; went on.</p></body></html>"},
	};
	z = make_zip(epub, 5);
	t = ex(z.data, z.len, "b.epub", NULL);
	assert_non_null(t);
	assert_string_equal(t, "Chapter One\n\nIt began & went on.\n\nChapter Two\n\nThe end.");
	free(t);
	dk_buf_free(&z);

	/* a docx without its document part: decode-error, not a crash */
	const struct ent bad[] = {{"[Content_Types].xml", "<Types/>"}};
	z = make_zip(bad, 1);
	const char *reason;
	assert_null(ex(z.data, z.len, "bad.docx", &reason));
	assert_string_equal(reason, "decode-error");
	dk_buf_free(&z);

	/* real files from file(1)'s test suite */
	size_t n;
	char *data = dk_test_read_file(dk_test_shared("corpus/file_type_samples_libmagic/tests/issue311docx.testfile"), &n);
	if (data) {
		t = ex(data, n, "issue311docx.testfile", NULL);
		assert_non_null(t);
		assert_contains(t, "Commentaires des articles");
		free(t);
		free(data);
	}
	data = dk_test_read_file(dk_test_shared("corpus/file_type_samples_libmagic/tests/issue359xlsx.testfile"), &n);
	if (data) {
		t = ex(data, n, "issue359xlsx.testfile", NULL);
		assert_non_null(t);
		assert_contains(t, "Hello");
		free(t);
		free(data);
	}
}

/* An EPUB with thousands of chapters: the manifest lists them in reverse,
 * the zip stores them in another order, one id is listed twice and one
 * spine entry names no item; the text still follows the spine, each
 * chapter once (the duplicate id twice, as listed).  The spine walk looks
 * items and members up through sorted indexes: 20000 chapters took 4.5 s
 * when it scanned, 0.2 s now. */
static void test_epub_many_chapters(void **state)
{
	(void)state;
	enum { N = 3000 };
	struct dk_buf opf = {0};
	dk_buf_puts(&opf, "<package><manifest>");
	for (int i = N - 1; i >= 0; i--)
		dk_buf_printf(&opf, "<item id=\"c%d\" href=\"t/ch%d.xhtml\" media-type=\"application/xhtml+xml\"/>", i, i);
	dk_buf_puts(&opf, "<item id=\"c7\" href=\"t/ch8.xhtml\"/></manifest><spine>");
	for (int i = 0; i < N; i++)
		dk_buf_printf(&opf, "<itemref idref=\"c%d\"/>", i);
	dk_buf_puts(&opf, "<itemref idref=\"nowhere\"/></spine></package>");
	struct ent *e = calloc(N + 3, sizeof *e);
	char (*body)[64] = calloc(N, sizeof *body);
	char (*name)[32] = calloc(N, sizeof *name);
	assert_true(e && body && name);
	e[0] = (struct ent){"mimetype", "application/epub+zip"};
	e[1] = (struct ent){"META-INF/container.xml", "<container><rootfiles><rootfile full-path=\"O/c.opf\"/></rootfiles></container>"};
	e[2] = (struct ent){"O/c.opf", opf.data};
	for (int k = 0; k < N; k++) {
		int i = (int)((k * 7919L) % N); /* stored in a scrambled order */
		snprintf(name[k], sizeof name[k], "O/t/ch%d.xhtml", i);
		snprintf(body[k], sizeof body[k], "<html><body><p>chapter %d.</p></body></html>", i);
		e[3 + k] = (struct ent){name[k], body[k]};
	}
	struct dk_buf z = make_zip(e, N + 3);
	char *t = ex(z.data, z.len, "many.epub", NULL);
	assert_non_null(t);
	/* "chapter 0." ... "chapter 7." "chapter 8." (c7's second item) "chapter 8." ... */
	const char *p = t;
	char want[32];
	for (int i = 0; i < N; i++) {
		snprintf(want, sizeof want, "chapter %d.", i);
		const char *q = strstr(p, want);
		if (!q || (i > 0 && q != strchr(p, 'c')) || (q[strlen(want)] != '\n' && q[strlen(want)]))
			fail_msg("chapter %d out of order", i);
		p = q + strlen(want);
		if (i == 7) {
			assert_true(!strncmp(strchr(p, 'c'), "chapter 8.\n", 11));
			p = strchr(p, 'c') + 11;
		}
	}
	assert_null(strstr(p, "chapter"));
	free(t);
	dk_buf_free(&z);
	dk_buf_free(&opf);
	free(e);
	free(body);
	free(name);
}


/* A one-page PDF with proper cross-reference offsets. */
static struct dk_buf make_pdf(const char *words)
{
	struct dk_buf b = {0};
	size_t off[6];
	char content[256];
	snprintf(content, sizeof content, "BT /F1 18 Tf 20 100 Td (%s) Tj ET\n", words);
	dk_buf_puts(&b, "%PDF-1.4\n");
	off[1] = b.len;
	dk_buf_puts(&b, "1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n");
	off[2] = b.len;
	dk_buf_puts(&b, "2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n");
	off[3] = b.len;
	dk_buf_puts(&b, "3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 400 144] /Contents 4 0 R "
			"/Resources << /Font << /F1 5 0 R >> >> >> endobj\n");
	off[4] = b.len;
	dk_buf_printf(&b, "4 0 obj << /Length %zu >> stream\n%sendstream endobj\n", strlen(content), content);
	off[5] = b.len;
	dk_buf_puts(&b, "5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj\n");
	size_t xref = b.len;
	dk_buf_puts(&b, "xref\n0 6\n0000000000 65535 f \n");
	for (int i = 1; i <= 5; i++)
		dk_buf_printf(&b, "%010zu 00000 n \n", off[i]);
	dk_buf_printf(&b, "trailer << /Size 6 /Root 1 0 R >>\nstartxref\n%zu\n%%%%EOF\n", xref);
	return b;
}

static void test_pdf(void **state)
{
	(void)state;
	struct dk_buf pdf = make_pdf("Hello PDF world");
	const char *reason;
	char *t = ex(pdf.data, pdf.len, "r.pdf", &reason);
	char *out = NULL;
	bool have = dk_test_run("command -v pdftotext", &out) == 0;
	free(out);
	if (have) {
		assert_non_null(t);
		assert_contains(t, "Hello PDF world");
	} else {
		assert_null(t);
		assert_string_equal(reason, "tool-missing");
	}
	free(t);

	/* through the walk: a PDF on disk, then with the tool missing */
	char *dir = dk_test_tmpdir();
	char path[4200];
	snprintf(path, sizeof path, "%s/r.pdf", dir);
	assert_int_equal(dk_test_write_file(path, pdf.data, pdf.len), 0);
	struct dk_ingest_params p = dk_ingest_default_params();
	p.pdftotext = "/nonexistent/pdftotext";
	struct dk_ingest *ing;
	assert_int_equal(dk_ingest_new(&ing, &p), DK_OK);
	dk_ingest_add(ing, path);
	const struct dk_doc *d;
	assert_int_equal(dk_ingest_next(ing, &d), DK_OK);
	assert_string_equal(d->mime, "application/pdf");
	assert_int_equal(d->action, DK_DOC_SKIP);
	assert_string_equal(d->skip_reason, "tool-missing");
	assert_non_null(strstr(d->detail, "r.pdf"));
	assert_non_null(strstr(d->detail, "pdftotext"));
	assert_int_equal(dk_ingest_next(ing, &d), DK_EOF);
	dk_ingest_free(ing);

	/* a damaged PDF is a decode-error with the file named */
	if (have) {
		t = ex("%PDF-1.4\ngarbage only\n", 22, "broken.pdf", &reason);
		assert_null(t);
		assert_string_equal(reason, "decode-error");
	}
	dk_buf_free(&pdf);
	snprintf(path, sizeof path, "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
	free(dir);
}

/* pdftotext is bounded: a tool that hangs (itself, or a child it started,
 * or after closing its output) is killed at --tool-timeout, one that floods
 * is stopped at --max-text-bytes; either way the PDF is a skipped record
 * with the reason, and the walk goes on to the next file.  Fake tools stand
 * in for pdftotext through params.pdftotext. */
static const char *fake_tool(const char *dir, const char *name, const char *body)
{
	static char path[4][4200];
	static int k;
	char *p = path[k++ % 4];
	snprintf(p, sizeof path[0], "%s/%s", dir, name);
	char script[512];
	snprintf(script, sizeof script, "#!/bin/sh\n%s\n", body);
	assert_int_equal(dk_test_write_file(p, script, strlen(script)), 0);
	assert_int_equal(chmod(p, 0755), 0);
	return p;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Walks dir/a.pdf and dir/b.txt with tool as pdftotext; checks b.txt still
 * comes after; returns the PDF's record fields (static). */
static const struct dk_doc *walk_pdf(const char *dir, const char *tool, struct dk_ingest **ing, double *secs)
{
	struct dk_ingest_params p = dk_ingest_default_params();
	assert_int_equal(p.tool_timeout_s, 30);
	assert_int_equal(p.max_text_bytes, 64ull << 20);
	p.pdftotext = tool;
	p.tool_timeout_s = 1;
	p.max_text_bytes = 1 << 20;
	assert_int_equal(dk_ingest_new(ing, &p), DK_OK);
	dk_ingest_add(*ing, dir);
	const struct dk_doc *d;
	double t0 = now_s();
	assert_int_equal(dk_ingest_next(*ing, &d), DK_OK);
	*secs = now_s() - t0;
	assert_non_null(strstr(d->path, "a.pdf"));
	assert_string_equal(d->mime, "application/pdf");
	return d;
}

static void expect_pdf_skip(const char *dir, const char *tool, const char *detail)
{
	struct dk_ingest *ing;
	double secs;
	const struct dk_doc *d = walk_pdf(dir, tool, &ing, &secs);
	if (d->action != DK_DOC_SKIP)
		fail_msg("%s: extracted %zu bytes instead of a skip", tool, d->text_len);
	assert_string_equal(d->skip_reason, "limit-exceeded");
	if (!strstr(d->detail, detail) || !strstr(d->detail, "a.pdf"))
		fail_msg("detail '%s' lacks '%s'", d->detail, detail);
	if (secs > 10)
		fail_msg("%s: took %.1f s with a 1 s limit", tool, secs);
	assert_int_equal(dk_ingest_next(ing, &d), DK_OK); /* the run goes on */
	assert_non_null(strstr(d->path, "b.txt"));
	assert_int_equal(d->action, DK_DOC_EXTRACT);
	assert_int_equal(dk_ingest_next(ing, &d), DK_EOF);
	dk_ingest_free(ing);
}

static void test_pdf_tool_limits(void **state)
{
	(void)state;
	char *dir = dk_test_tmpdir(), *tools = dk_test_tmpdir();
	char path[4200];
	struct dk_buf pdf = make_pdf("Hello PDF world");
	snprintf(path, sizeof path, "%s/a.pdf", dir);
	assert_int_equal(dk_test_write_file(path, pdf.data, pdf.len), 0);
	snprintf(path, sizeof path, "%s/b.txt", dir);
	assert_int_equal(dk_test_write_file(path, "after the pdf\n", 14), 0);

	/* a well-behaved tool still works, and reads no stdin */
	struct dk_ingest *ing;
	double secs;
	const struct dk_doc *d = walk_pdf(dir, fake_tool(tools, "ok", "cat; echo \"text of $6\""), &ing, &secs);
	assert_int_equal(d->action, DK_DOC_EXTRACT);
	assert_non_null(strstr(d->text, "text of "));
	assert_non_null(strstr(d->text, "a.pdf"));
	dk_ingest_free(ing);

	expect_pdf_skip(dir, fake_tool(tools, "hang", "sleep 20"), "pdftotext timed out after 1 s");
	expect_pdf_skip(dir, fake_tool(tools, "linger", "echo partial; exec >&-; sleep 20"),
			"pdftotext timed out after 1 s");
	expect_pdf_skip(dir, fake_tool(tools, "flood", "head -c 3000000 /dev/zero | tr '\\0' x"),
			"extracted text exceeds 1048576 bytes");
	expect_pdf_skip(dir, fake_tool(tools, "endless", "yes"), "extracted text exceeds 1048576 bytes");

	dk_buf_free(&pdf);
	snprintf(path, sizeof path, "rm -rf '%s' '%s'", dir, tools);
	assert_int_equal(system(path), 0);
	free(dir);
	free(tools);
}

static void test_glob(void **state)
{
	(void)state;
	assert_true(dk_glob_match("**/*.txt", "a/b/c.txt"));
	assert_true(dk_glob_match("**/*.txt", "c.txt"));
	assert_false(dk_glob_match("**/*.txt", "c.txt.gz"));
	assert_true(dk_glob_match("*.txt", "deep/dir/c.txt")); /* no '/': base name */
	assert_false(dk_glob_match("a/*.txt", "a/b/c.txt"));
	assert_true(dk_glob_match("a/**", "a/b/c.txt"));
	assert_true(dk_glob_match("a/**/c.txt", "a/c.txt"));
	assert_true(dk_glob_match("a/**/c.txt", "a/x/y/c.txt"));
	assert_true(dk_glob_match("file?.[ch]", "file1.c"));
	assert_false(dk_glob_match("file?.[!ch]", "file1.c"));
	assert_true(dk_glob_match("[a-c]*", "beta"));
	assert_true(dk_glob_match("\\*star", "*star"));
	assert_false(dk_glob_match("\\*star", "xstar"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_encodings), cmocka_unit_test(test_html_xml),
		cmocka_unit_test(test_csv_json),       cmocka_unit_test(test_rtf_eml),
		cmocka_unit_test(test_office_epub),    cmocka_unit_test(test_epub_many_chapters),
		cmocka_unit_test(test_pdf),
		cmocka_unit_test(test_pdf_tool_limits), cmocka_unit_test(test_glob),
	};
	return dk_test_run_group(tests, NULL, NULL);
}

/* Glob matching with "**" (see glob.h).  Backtracking is bounded by the
 * pattern's star count times the path length, fine for paths. */
#include <string.h>

#include "glob.h"

static bool match_class(const char **pp, char c)
{
	const char *p = *pp + 1; /* past '[' */
	bool neg = false, hit = false;
	if (*p == '!' || *p == '^') {
		neg = true;
		p++;
	}
	const char *start = p;
	while (*p && (*p != ']' || p == start)) {
		char lo = *p, hi = *p;
		if (p[1] == '-' && p[2] && p[2] != ']') {
			hi = p[2];
			p += 2;
		}
		if ((unsigned char)c >= (unsigned char)lo && (unsigned char)c <= (unsigned char)hi)
			hit = true;
		p++;
	}
	if (*p != ']') /* unterminated: '[' is literal */
		return c == '[' && (*pp += 1, true);
	*pp = p + 1;
	return hit != neg;
}

static bool gm(const char *p, const char *s, int budget)
{
	if (budget <= 0)
		return false;
	while (*p) {
		if (p[0] == '*' && p[1] == '*') {
			const char *rest = p + 2;
			if (*rest == '/') {
				/* zero directories, or any prefix ending in '/' */
				if (gm(rest + 1, s, budget - 1))
					return true;
				for (const char *q = s; *q; q++)
					if (*q == '/' && gm(rest + 1, q + 1, budget - 1))
						return true;
				return false;
			}
			for (const char *q = s;; q++) {
				if (gm(rest, q, budget - 1))
					return true;
				if (!*q)
					return false;
			}
		}
		if (*p == '*') {
			for (const char *q = s;; q++) {
				if (gm(p + 1, q, budget - 1))
					return true;
				if (!*q || *q == '/')
					return false;
			}
		}
		if (!*s)
			return false;
		if (*p == '?') {
			if (*s == '/')
				return false;
			p++;
			s++;
			continue;
		}
		if (*p == '[') {
			if (*s == '/' || !match_class(&p, *s))
				return false;
			s++;
			continue;
		}
		if (*p == '\\' && p[1])
			p++;
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	return !*s;
}

bool dk_glob_match(const char *pat, const char *path)
{
	if (!strchr(pat, '/')) {
		const char *base = strrchr(path, '/');
		path = base ? base + 1 : path;
	}
	return gm(pat, path, 100000);
}

/* milter: a milter's own SMTP reply (SMFIR_REPLYCODE) as modmta's
 * (milter_session.h). */
#include <stdio.h>
#include <string.h>

#include "milter_session.h"

/* 1 to 3 digits at p: their count, else 0. */
static size_t
milter_digits(const char *p)
{
    size_t n = strspn(p, "0123456789");

    return n >= 1 && n <= 3 ? n : 0;
}

/* The length of the enhanced status code at p (RFC 3463: class "." 1*3
 * digits "." 1*3 digits, the class being cls, the reply code's first
 * digit) when a space or the end follows it, else 0. */
static size_t
milter_esc_len(const char *p, char cls)
{
    size_t n = 2, d;

    if (p[0] != cls || p[1] != '.' || (d = milter_digits(p + n)) == 0)
        return 0;
    n += d;
    if (p[n] != '.' || (d = milter_digits(p + n + 1)) == 0)
        return 0;
    n += 1 + d;
    return p[n] == ' ' || p[n] == '\0' ? n : 0;
}

/* "550 5.7.1 text" or a multi-line "550-5.7.1 a\r\n550 5.7.1 b": the
 * verdict (REJECT for 5xx, TEMPFAIL for 4xx) with the reply set, or -1
 * when it is not a 4xx/5xx reply. Each line's enhanced status code
 * (of the reply's class, strictly formed) is taken off; the first one is
 * the reply's. Anything else there stays in the line's text. */
int
milter_replycode(modmta_ctx *ctx, char *s)
{
    const char *lines[MODMTA_REPLY_LINES_MAX];
    char esc[16] = "";
    char *line, *end;
    size_t nlines = 0, n;
    int code;

    if (s[0] < '4' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' ||
        s[2] > '9' || (s[3] != ' ' && s[3] != '-' && s[3] != '\0'))
        return -1;
    code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    for (line = s; *line && nlines < MODMTA_REPLY_LINES_MAX; line = end) {
        end = line + strcspn(line, "\r\n");
        if (*end)
            *end++ = '\0';
        end += strspn(end, "\r\n");
        if (strncmp(line, s, 3) != 0 && line != s)
            return -1;
        line += 3;
        line += *line == ' ' || *line == '-';
        n = milter_esc_len(line, s[0]);
        if (n > 0) {
            if (esc[0] == '\0')
                snprintf(esc, sizeof(esc), "%.*s", (int)n, line);
            line += n + (line[n] == ' ');
        }
        lines[nlines++] = line;
    }
    if (nlines == 0 || (nlines == 1 && lines[0][0] == '\0'))
        lines[0] = code >= 500 ? "Command rejected" : "Try again later",
        nlines = 1;
    if (modmta_reply_lines(ctx, code, esc[0] ? esc : NULL, lines, nlines) < 0)
        return -1;
    return code >= 500 ? MODMTA_REJECT : MODMTA_TEMPFAIL;
}

"""What the fault and crash tests check of every mailbox: it parses, each
acknowledged message is there exactly once, byte for byte, and nothing
else is."""

import glob
import os
import random

from harness import header, make_message, read_locked, split_mbox


def message(mid, size, seed):
    """A message of about size octets whose body is reproducible from
    seed and ends with a marker line (a cut message misses it)."""
    rnd = random.Random(seed)
    lines, n = [], 0
    while n < size:
        line = ''.join(rnd.choice('abcdefghijklmnopqrstuvwxyz0123456789 .,')
                       for _ in range(rnd.randint(1, 120)))
        lines.append(line)
        n += len(line) + 2
    return make_message(mid, body='\r\n'.join(lines) + '\r\nend-of-%s\r\n'
                        % mid)


def stored_form(msg):
    """msg as a mailbox holds it after the headers the store adds: LF
    line ends (no body line starts with "From ")."""
    return msg.replace(b'\r\n', b'\n')


def mbox_messages(path):
    """The messages of the mbox at path, read under a shared lock as mail
    readers do (raises if it does not parse)."""
    data = read_locked(path)
    return [] if data is None else split_mbox(data)


def maildir_messages(path):
    return [open(f, 'rb').read()
            for f in sorted(glob.glob(os.path.join(path, 'new', '*'))
                            + glob.glob(os.path.join(path, 'cur', '*')))]


def check_exact(test, stored, sent, what, maybe=None):
    """stored: the messages of one mailbox; sent: Message-ID -> the bytes
    sent, for every message that must be there; maybe: the same for
    messages that may be there (sent, not acknowledged). Each is there
    at most once, its content byte-exact after the headers the store
    prepended; each of sent is there."""
    sent_or_maybe = dict(maybe or {}, **sent)
    seen = {}
    for m in stored:
        ids = header(m, 'Message-ID')
        test.assertEqual(len(ids), 1, '%s: a message without one '
                         'Message-ID: %r' % (what, m[:300]))
        mid = ids[0].strip('<>')
        test.assertIn(mid, sent_or_maybe, '%s: a message never acknowledged: %s'
                      % (what, mid))
        test.assertNotIn(mid, seen, '%s: %s delivered twice' % (what, mid))
        seen[mid] = True
        want = stored_form(sent_or_maybe[mid])
        got = m[:-1] if m.endswith(b'\n\n') else m   # mbox separator line
        test.assertTrue(got.endswith(want) and got[:-len(want)]
                        .endswith(b'\n'),
                        '%s: %s is not byte-exact (%d octets stored, '
                        '%d sent)' % (what, mid, len(got), len(want)))
    missing = sorted(set(sent) - set(seen))
    test.assertEqual(missing, [], '%s: acknowledged, not delivered'
                     % what)

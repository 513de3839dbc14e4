/*
 * milter: the Sendmail milter protocol, version 6, as the MTA side sees
 * it: command and reply codes, action and protocol flags, macro stages.
 * The numbers are the wire protocol's (mfdef.h of libmilter documents
 * the same values); nothing here is modmta's.
 */
#ifndef MILTER_PROTO_H
#define MILTER_PROTO_H

#define MILTER_VERSION 6

/* Commands, MTA to milter. */
enum {
    MILTER_C_ABORT = 'A',
    MILTER_C_BODY = 'B',
    MILTER_C_CONNECT = 'C',
    MILTER_C_MACRO = 'D',
    MILTER_C_BODYEOB = 'E',
    MILTER_C_HELO = 'H',
    MILTER_C_QUIT_NC = 'K',
    MILTER_C_HEADER = 'L',
    MILTER_C_MAIL = 'M',
    MILTER_C_EOH = 'N',
    MILTER_C_OPTNEG = 'O',
    MILTER_C_QUIT = 'Q',
    MILTER_C_RCPT = 'R',
    MILTER_C_DATA = 'T',
    MILTER_C_UNKNOWN = 'U',
};

/* Replies, milter to MTA. */
enum {
    MILTER_R_ADDRCPT = '+',
    MILTER_R_DELRCPT = '-',
    MILTER_R_ADDRCPT_PAR = '2',
    MILTER_R_SHUTDOWN = '4',
    MILTER_R_ACCEPT = 'a',
    MILTER_R_REPLBODY = 'b',
    MILTER_R_CONTINUE = 'c',
    MILTER_R_DISCARD = 'd',
    MILTER_R_CHGFROM = 'e',
    MILTER_R_CONNFAIL = 'f',
    MILTER_R_ADDHEADER = 'h',
    MILTER_R_INSHEADER = 'i',
    MILTER_R_SETSYMLIST = 'l',
    MILTER_R_CHGHEADER = 'm',
    MILTER_R_PROGRESS = 'p',
    MILTER_R_QUARANTINE = 'q',
    MILTER_R_REJECT = 'r',
    MILTER_R_SKIP = 's',
    MILTER_R_TEMPFAIL = 't',
    MILTER_R_REPLYCODE = 'y',
};

/* Actions a milter may ask for (SMFIF_*). */
enum {
    MILTER_A_ADDHDRS = 0x01,
    MILTER_A_CHGBODY = 0x02,
    MILTER_A_ADDRCPT = 0x04,
    MILTER_A_DELRCPT = 0x08,
    MILTER_A_CHGHDRS = 0x10,
    MILTER_A_QUARANTINE = 0x20,
    MILTER_A_CHGFROM = 0x40,
    MILTER_A_ADDRCPT_PAR = 0x80,
    MILTER_A_SETSYMLIST = 0x100,
};

/* Protocol flags (SMFIP_*): steps the MTA leaves out, replies the milter
 * leaves out, and options. */
enum {
    MILTER_P_NOCONNECT = 0x1,
    MILTER_P_NOHELO = 0x2,
    MILTER_P_NOMAIL = 0x4,
    MILTER_P_NORCPT = 0x8,
    MILTER_P_NOBODY = 0x10,
    MILTER_P_NOHDRS = 0x20,
    MILTER_P_NOEOH = 0x40,
    MILTER_P_NR_HDR = 0x80,
    MILTER_P_NOUNKNOWN = 0x100,
    MILTER_P_NODATA = 0x200,
    MILTER_P_SKIP = 0x400,
    MILTER_P_RCPT_REJ = 0x800,
    MILTER_P_NR_CONN = 0x1000,
    MILTER_P_NR_HELO = 0x2000,
    MILTER_P_NR_MAIL = 0x4000,
    MILTER_P_NR_RCPT = 0x8000,
    MILTER_P_NR_DATA = 0x10000,
    MILTER_P_NR_UNKN = 0x20000,
    MILTER_P_NR_EOH = 0x40000,
    MILTER_P_NR_BODY = 0x80000,
    MILTER_P_HDR_LEADSPC = 0x100000,
    MILTER_P_MDS_256K = 0x10000000,
    MILTER_P_MDS_1M = 0x20000000,
};

/* Macro stages of SETSYMLIST. */
enum {
    MILTER_M_CONNECT = 0,
    MILTER_M_HELO = 1,
    MILTER_M_MAIL = 2,
    MILTER_M_RCPT = 3,
    MILTER_M_DATA = 4,
    MILTER_M_EOM = 5,
    MILTER_M_EOH = 6,
    MILTER_M_COUNT = 7,
};

/* Body chunk sizes: the default, and the two larger negotiated ones. */
#define MILTER_CHUNK_64K 65535u
#define MILTER_CHUNK_256K (256u * 1024 - 1)
#define MILTER_CHUNK_1M (1024u * 1024 - 1)
/* The largest packet read from a milter: a 1M body chunk and its code. */
#define MILTER_PACKET_MAX (MILTER_CHUNK_1M + 1)

#endif

/*
 * local_kms.c - the embedded local KMS (kms.h): AWS KMS's symmetric-key semantics
 * (docs/reference/aws-apis.md section 2) over AES-256-GCM master keys kept in a key file.
 *
 * Key file (text, one record per line, '\n' separated, a final '\n' optional):
 *     keystored-local-kms v1
 *     <lowercase uuid> <base64 (RFC 4648, padded) of 32 random bytes>
 *     ...
 * The first key is the default key. The file must be mode 0600 (no group/other bits), like an
 * ssh private key: it holds every master key in the clear.
 *
 * Ciphertext blob (what CiphertextBlob carries, opaque to callers as in AWS KMS):
 *     offset 0   1 byte   version, 0x01
 *     offset 1   16 bytes key uuid (binary, the 16 bytes the hyphenated uuid spells)
 *     offset 17  12 bytes random IV (96 bits: the GCM IV length NIST SP 800-38D section 8.2
 *                         recommends; random IVs keep the invocation count per key far below
 *                         the 2^32 limit of section 8.3 for a key store's use)
 *     offset 29  n bytes  AES-256-GCM ciphertext of the plaintext
 *     offset 29+n 16 bytes GCM tag (full 128 bits)
 * AAD = the 17-byte header (version || key uuid) || ks_ec_serialize(encryption context), so a
 * changed header, IV, body, tag or encryption context (a changed, missing or extra entry) fails
 * authentication: AWS KMS binds the encryption context the same way ("Decrypt must get the exact
 * same map", aws-apis.md section 2). The canonical serialization sorts entries, so the order the
 * caller built the map in does not matter.
 *
 * Errors are KS_E_KMS, message "KMS <AWS error name>", the explanation in the log-only detail
 * (kms.h): ValidationException for request members outside AWS's limits, NotFoundException for a
 * KeyId that names no key, IncorrectKeyException for a KeyId that is not the ciphertext's key,
 * InvalidCiphertextException for a blob that does not parse, names no key of this KMS, or does not
 * authenticate (AWS KMS does not say why a ciphertext is invalid either). Key file problems are
 * KS_E_CONFIG.
 *
 * Results: out must be initialized (ks_kms_result_init, as kms.h's callers do); on success its
 * previous contents are released and replaced, on failure it is left untouched.
 *
 * Thread safety: the keys and the fetched cipher are read-only after ks_kms_local_open; every
 * call gets its own EVP_CIPHER_CTX, and OpenSSL 3's RAND_* and EVP_CIPHER objects may be shared
 * across threads (OpenSSL openssl-threads(7)).
 */
#include "kms/kms.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/base64.h"
#include "common/secret.h"
#include "common/util.h"

#define LOCAL_ARN_PREFIX "arn:aws:kms:local:000000000000:key/"
#define LOCAL_ARN_PREFIX_LEN (sizeof LOCAL_ARN_PREFIX - 1)
#define LOCAL_ARN_LEN (LOCAL_ARN_PREFIX_LEN + KS_UUID_LEN)

#define KEY_FILE_HEADER "keystored-local-kms v1"
#define KEY_FILE_HEADER_LEN (sizeof KEY_FILE_HEADER - 1)
/* A key line: uuid, space, 44 base64 characters, newline. */
#define KEY_FILE_LINE_LEN (KS_UUID_LEN + 1 + 44 + 1)
/* Far above any real key file (12,000 keys); bounds the read. */
#define KEY_FILE_MAX ((size_t)1 << 20)

#define MASTER_KEY_LEN 32
#define KEY_UUID_BIN_LEN 16

#define BLOB_VERSION 0x01
#define BLOB_HEADER_LEN (1 + KEY_UUID_BIN_LEN)
#define BLOB_IV_LEN 12
#define BLOB_TAG_LEN 16
#define BLOB_OVERHEAD (BLOB_HEADER_LEN + BLOB_IV_LEN + BLOB_TAG_LEN)

/* AWS KMS request limits (aws-apis.md section 2, B-KMS). */
#define KMS_KEY_ID_MAX 2048
#define KMS_PLAINTEXT_MAX 4096
#define KMS_CIPHERTEXT_MAX 6144
#define KMS_DATA_KEY_MAX 1024

struct master_key {
    char arn[LOCAL_ARN_LEN + 1]; /* the uuid is its tail */
    unsigned char id[KEY_UUID_BIN_LEN];
    unsigned char *key; /* MASTER_KEY_LEN bytes, ks_secret_*: wiped when freed */
};

struct key_set {
    struct master_key *keys;
    size_t n, cap;
};

struct local_kms {
    struct ks_kms base; /* first: kms.h "Every backend's struct starts with this" */
    struct key_set set; /* read-only after open */
    EVP_CIPHER *aes_gcm;
};

static const struct ks_kms_ops local_ops;

/* ------------------------------------------------------------------------------------------ */
/* Key ids                                                                                     */

static const char *arn_uuid(const struct master_key *mk)
{
    return mk->arn + LOCAL_ARN_PREFIX_LEN;
}

/* The 16 bytes a valid hyphenated uuid spells. */
static void uuid_to_bin(const char *uuid, unsigned char out[KEY_UUID_BIN_LEN])
{
    char hex[2 * KEY_UUID_BIN_LEN + 1];
    size_t i, o = 0;

    for (i = 0; i < KS_UUID_LEN; i++)
        if (uuid[i] != '-')
            hex[o++] = uuid[i];
    hex[o] = '\0';
    (void)ks_hex_decode(hex, out, KEY_UUID_BIN_LEN); /* cannot fail: ks_uuid_is_valid held */
}

/*
 * The uuid a key id names: AWS accepts a key ARN or a bare key id (aws-apis.md section 2,
 * "KeyId"); here only local ARNs and uuids can name a key. 0, or -1 when it names none.
 */
static int key_id_uuid(const char *key_id, char uuid[KS_UUID_LEN + 1])
{
    if (strncmp(key_id, LOCAL_ARN_PREFIX, LOCAL_ARN_PREFIX_LEN) == 0)
        key_id += LOCAL_ARN_PREFIX_LEN;
    if (strlen(key_id) != KS_UUID_LEN || !ks_uuid_is_valid(key_id))
        return -1;
    memcpy(uuid, key_id, KS_UUID_LEN + 1);
    return 0;
}

static const struct master_key *key_set_find(const struct key_set *s,
                                             const unsigned char id[KEY_UUID_BIN_LEN])
{
    size_t i;
    for (i = 0; i < s->n; i++)
        if (memcmp(s->keys[i].id, id, KEY_UUID_BIN_LEN) == 0)
            return &s->keys[i];
    return NULL;
}

/* Adds uuid with key (ownership of key moves to the set, also on failure). 0, or -1 on OOM. */
static int key_set_add(struct key_set *s, const char *uuid, unsigned char *key)
{
    struct master_key *mk;

    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        struct master_key *keys = realloc(s->keys, cap * sizeof *keys);
        if (!keys) {
            ks_secret_free(key, MASTER_KEY_LEN);
            return -1;
        }
        s->keys = keys;
        s->cap = cap;
    }
    mk = &s->keys[s->n++];
    memcpy(mk->arn, LOCAL_ARN_PREFIX, LOCAL_ARN_PREFIX_LEN);
    memcpy(mk->arn + LOCAL_ARN_PREFIX_LEN, uuid, KS_UUID_LEN + 1);
    uuid_to_bin(uuid, mk->id);
    mk->key = key;
    return 0;
}

static void key_set_free(struct key_set *s)
{
    size_t i;
    for (i = 0; i < s->n; i++)
        ks_secret_free(s->keys[i].key, MASTER_KEY_LEN);
    free(s->keys);
    s->keys = NULL;
    s->n = s->cap = 0;
}

/* A new master key under uuid (a fresh uuid v4 when NULL). */
static ks_status key_set_generate(struct key_set *s, const char *uuid, struct ks_error *err)
{
    char fresh[KS_UUID_LEN + 1];
    unsigned char *key;

    if (!uuid) {
        if (ks_uuid_v4(fresh) != 0)
            return ks_error_set(err, KS_E_INTERNAL, "local KMS: random source failed");
        uuid = fresh;
    }
    key = ks_secret_alloc(MASTER_KEY_LEN);
    if (!key)
        return ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    /* RAND_priv_bytes: OpenSSL's DRBG for values that must stay private (RAND_bytes(3)). */
    if (RAND_priv_bytes(key, MASTER_KEY_LEN) != 1) {
        ks_secret_free(key, MASTER_KEY_LEN);
        return ks_error_set(err, KS_E_INTERNAL, "local KMS: random source failed");
    }
    if (key_set_add(s, uuid, key) != 0)
        return ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    return KS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Key file                                                                                    */

static const char *errno_text(int e, char *buf, size_t size)
{
    return strerror_r(e, buf, size); /* GNU strerror_r (_GNU_SOURCE, Makefile) */
}

static ks_status parse_key_line(const char *path, size_t line_no, const char *line, size_t line_len,
                                struct key_set *s, struct ks_error *err)
{
    char uuid[KS_UUID_LEN + 1];
    unsigned char *key = NULL, id[KEY_UUID_BIN_LEN];
    size_t key_len = 0;

    if (line_len < KS_UUID_LEN + 1 || line[KS_UUID_LEN] != ' ')
        return ks_error_set(err, KS_E_CONFIG, "%s:%zu: expected '<uuid> <base64 key>'", path,
                            line_no);
    memcpy(uuid, line, KS_UUID_LEN);
    uuid[KS_UUID_LEN] = '\0';
    if (!ks_uuid_is_valid(uuid))
        return ks_error_set(err, KS_E_CONFIG, "%s:%zu: key id is not a lowercase uuid", path,
                            line_no);
    if (ks_base64_decode(line + KS_UUID_LEN + 1, line_len - KS_UUID_LEN - 1, &key, &key_len) != 0)
        return ks_error_set(err, KS_E_CONFIG, "%s:%zu: key is not valid base64", path, line_no);
    if (key_len != MASTER_KEY_LEN) {
        ks_secret_free(key, key_len);
        return ks_error_set(err, KS_E_CONFIG, "%s:%zu: key is %zu bytes, expected %d", path,
                            line_no, key_len, MASTER_KEY_LEN);
    }
    uuid_to_bin(uuid, id);
    if (key_set_find(s, id)) {
        ks_secret_free(key, key_len);
        return ks_error_set(err, KS_E_CONFIG, "%s:%zu: duplicate key id %s", path, line_no, uuid);
    }
    if (key_set_add(s, uuid, key) != 0)
        return ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    return KS_OK;
}

static ks_status parse_key_file(const char *path, const char *buf, size_t len, struct key_set *s,
                                struct ks_error *err)
{
    size_t pos = 0, line_no = 1;

    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - line) : len - pos;
        ks_status st;

        if (line_no == 1) {
            if (line_len != KEY_FILE_HEADER_LEN || memcmp(line, KEY_FILE_HEADER, line_len) != 0)
                return ks_error_set(err, KS_E_CONFIG, "%s:1: expected header '%s'", path,
                                    KEY_FILE_HEADER);
        } else if ((st = parse_key_line(path, line_no, line, line_len, s, err)) != KS_OK) {
            return st;
        }
        pos += line_len + (nl ? 1 : 0);
        line_no++;
    }
    if (line_no == 1)
        return ks_error_set(err, KS_E_CONFIG, "%s:1: expected header '%s'", path, KEY_FILE_HEADER);
    if (s->n == 0)
        return ks_error_set(err, KS_E_CONFIG, "%s:%zu: expected at least one key", path, line_no);
    return KS_OK;
}

/*
 * Reads and parses path into s. A missing file sets *missing and is not an error. The read
 * buffer holds every key in the clear, so it is a secret buffer, wiped when done.
 */
static ks_status load_key_file(const char *path, struct key_set *s, int *missing,
                               struct ks_error *err)
{
    char ebuf[128];
    struct stat st;
    char *buf;
    size_t len = 0;
    ks_status status;
    int fd;

    *missing = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            *missing = 1;
            return KS_OK;
        }
        return ks_error_set(err, KS_E_CONFIG, "key file %s: cannot open: %s", path,
                            errno_text(errno, ebuf, sizeof ebuf));
    }
    if (fstat(fd, &st) != 0) {
        status = ks_error_set(err, KS_E_CONFIG, "key file %s: cannot stat: %s", path,
                              errno_text(errno, ebuf, sizeof ebuf));
        close(fd);
        return status;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ks_error_set(err, KS_E_CONFIG, "key file %s is not a regular file", path);
    }
    /* The file holds master keys in the clear: like ssh with a private key, refuse to use one
     * that others could have read (docs/architecture.md section 6: files 0600). */
    if (st.st_mode & 077) {
        close(fd);
        return ks_error_set(err, KS_E_CONFIG, "key file %s must be mode 0600", path);
    }
    if ((size_t)st.st_size > KEY_FILE_MAX) {
        close(fd);
        return ks_error_set(err, KS_E_CONFIG, "key file %s is over %zu bytes", path, KEY_FILE_MAX);
    }
    buf = (char *)ks_secret_alloc(KEY_FILE_MAX + 1);
    if (!buf) {
        close(fd);
        return ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    }
    /* Read to EOF rather than trusting st_size: the file may change under us. */
    for (;;) {
        ssize_t r = read(fd, buf + len, KEY_FILE_MAX + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            status = ks_error_set(err, KS_E_CONFIG, "key file %s: cannot read: %s", path,
                                  errno_text(errno, ebuf, sizeof ebuf));
            goto done;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > KEY_FILE_MAX) {
            status =
                ks_error_set(err, KS_E_CONFIG, "key file %s is over %zu bytes", path, KEY_FILE_MAX);
            goto done;
        }
    }
    status = parse_key_file(path, buf, len, s, err);
done:
    ks_secret_free(buf, KEY_FILE_MAX + 1);
    close(fd);
    return status;
}

/* The key file's text for s, in a secret buffer (*out, ks_secret_free(*out, *out_len)). */
static ks_status render_key_file(const struct key_set *s, char **out, size_t *out_len,
                                 struct ks_error *err)
{
    size_t len = KEY_FILE_HEADER_LEN + 1 + s->n * KEY_FILE_LINE_LEN;
    char *buf = (char *)ks_secret_alloc(len);
    size_t i, pos = 0;

    if (!buf)
        return ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    memcpy(buf, KEY_FILE_HEADER "\n", KEY_FILE_HEADER_LEN + 1);
    pos = KEY_FILE_HEADER_LEN + 1;
    for (i = 0; i < s->n; i++) {
        char *b64 = ks_base64_encode(s->keys[i].key, MASTER_KEY_LEN);
        if (!b64) {
            ks_secret_free(buf, len);
            return ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
        }
        memcpy(buf + pos, arn_uuid(&s->keys[i]), KS_UUID_LEN);
        buf[pos + KS_UUID_LEN] = ' ';
        memcpy(buf + pos + KS_UUID_LEN + 1, b64, 44);
        buf[pos + KEY_FILE_LINE_LEN - 1] = '\n';
        pos += KEY_FILE_LINE_LEN;
        ks_secret_free_string(b64);
    }
    *out = buf;
    *out_len = len;
    return KS_OK;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Writes, forces to disk and closes fd. 0, or -1 with errno set (fd closed either way). */
static int write_sync_close(int fd, const char *buf, size_t len)
{
    int e;
    /* fchmod: the umask may have cleared owner bits; the file must be exactly 0600. */
    if (fchmod(fd, 0600) != 0 || write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return close(fd);
}

/* The directory part of path, into dir ("." when path has none). */
static void dir_of(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    size_t n;

    if (!slash) {
        memcpy(dir, ".", 2);
        return;
    }
    n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= size)
        n = size - 1;
    memcpy(dir, path, n);
    dir[n] = '\0';
}

/*
 * Makes a new or renamed directory entry durable (rename(2) and open(2) only change the
 * directory in memory; fsync(2) on the directory writes it). Best effort: the data itself is
 * already on disk, and some file systems refuse fsync on directories (EINVAL).
 */
static void sync_dir(const char *path)
{
    char dir[4096];
    int fd;

    dir_of(path, dir, sizeof dir);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/*
 * Creates path (O_EXCL, 0600) holding buf. Returns KS_OK, or KS_E_ALREADY_EXISTS without
 * touching err when another process created it first, or a KS_E_CONFIG error. A crash during
 * the write leaves a short file, which the next start refuses naming the line: loud, not silent.
 */
static ks_status create_key_file(const char *path, const char *buf, size_t len,
                                 struct ks_error *err)
{
    char ebuf[128], dir[4096];
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

    if (fd < 0) {
        if (errno == EEXIST)
            return KS_E_ALREADY_EXISTS;
        if (errno == ENOENT) {
            dir_of(path, dir, sizeof dir);
            return ks_error_set(err, KS_E_CONFIG, "key file %s: directory %s does not exist", path,
                                dir);
        }
        return ks_error_set(err, KS_E_CONFIG, "key file %s: cannot create: %s", path,
                            errno_text(errno, ebuf, sizeof ebuf));
    }
    if (write_sync_close(fd, buf, len) != 0) {
        ks_status st = ks_error_set(err, KS_E_CONFIG, "key file %s: cannot write: %s", path,
                                    errno_text(errno, ebuf, sizeof ebuf));
        unlink(path);
        return st;
    }
    sync_dir(path);
    return KS_OK;
}

/*
 * Replaces path with buf atomically: a temporary file in the same directory (so rename(2) does
 * not cross file systems), written and fsync'd, then renamed over path. Readers see the old file
 * or the new one, never a mix; a crash leaves the old file (and perhaps a stray temporary).
 */
static ks_status replace_key_file(const char *path, const char *buf, size_t len,
                                  struct ks_error *err)
{
    char ebuf[128];
    size_t path_len = strlen(path);
    char *tmp = malloc(path_len + sizeof ".tmp-XXXXXX");
    ks_status st = KS_OK;
    int fd;

    if (!tmp)
        return ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    memcpy(tmp, path, path_len);
    memcpy(tmp + path_len, ".tmp-XXXXXX", sizeof ".tmp-XXXXXX");
    fd = mkstemp(tmp); /* creates the file 0600 (POSIX.1-2008) */
    if (fd < 0) {
        st = ks_error_set(err, KS_E_CONFIG, "key file %s: cannot create temporary file: %s", path,
                          errno_text(errno, ebuf, sizeof ebuf));
        free(tmp);
        return st;
    }
    if (write_sync_close(fd, buf, len) != 0) {
        st = ks_error_set(err, KS_E_CONFIG, "key file %s: cannot write: %s", path,
                          errno_text(errno, ebuf, sizeof ebuf));
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        st = ks_error_set(err, KS_E_CONFIG, "key file %s: cannot replace: %s", path,
                          errno_text(errno, ebuf, sizeof ebuf));
        unlink(tmp);
    } else {
        sync_dir(path);
    }
    free(tmp);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* AES-256-GCM                                                                                 */

/* As the AWS backend does (docs/reference/aws-apis.md section 1): the client sees the
 * dependency and the error code, the explanation goes to the log-only detail. */
static ks_status kms_error(struct ks_error *err, const char *aws_error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ks_status kms_error(struct ks_error *err, const char *aws_error, const char *fmt, ...)
{
    char what[KS_ERROR_DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    ks_error_set(err, KS_E_KMS, "KMS %s", aws_error);
    ks_error_set_detail(err, "%s: %s", aws_error, what);
    return KS_E_KMS;
}

/* AAD = blob header || canonical encryption context (file comment). NULL ec = empty map. */
static ks_status make_aad(const unsigned char header[BLOB_HEADER_LEN], const struct ks_ec *ec,
                          unsigned char **aad, size_t *aad_len, struct ks_error *err)
{
    struct ks_ec empty;
    unsigned char *ser = NULL;
    size_t ser_len = 0;

    ks_ec_init(&empty);
    if (ks_ec_serialize(ec ? ec : &empty, &ser, &ser_len) != 0)
        return kms_error(err, "ValidationException",
                         "encryption context has an entry over 65535 bytes or too many entries");
    *aad = malloc(BLOB_HEADER_LEN + ser_len);
    if (!*aad) {
        free(ser);
        return ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    }
    memcpy(*aad, header, BLOB_HEADER_LEN);
    if (ser_len)
        memcpy(*aad + BLOB_HEADER_LEN, ser, ser_len);
    *aad_len = BLOB_HEADER_LEN + ser_len;
    free(ser);
    return KS_OK;
}

/* Encrypts plaintext (1..KMS_CIPHERTEXT_MAX - BLOB_OVERHEAD bytes) under mk into a new blob. */
static ks_status seal(const struct local_kms *k, const struct master_key *mk,
                      const unsigned char *plaintext, size_t plaintext_len, const struct ks_ec *ec,
                      struct ks_bytes *out, struct ks_error *err)
{
    size_t blob_len = BLOB_OVERHEAD + plaintext_len;
    unsigned char *blob, *aad = NULL;
    unsigned char *iv, *body, *tag;
    size_t aad_len = 0;
    EVP_CIPHER_CTX *ctx = NULL;
    ks_status st;
    int n;

    blob = malloc(blob_len);
    if (!blob)
        return ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    blob[0] = BLOB_VERSION;
    memcpy(blob + 1, mk->id, KEY_UUID_BIN_LEN);
    iv = blob + BLOB_HEADER_LEN;
    body = iv + BLOB_IV_LEN;
    tag = body + plaintext_len;
    st = make_aad(blob, ec, &aad, &aad_len, err);
    if (st != KS_OK)
        goto done;
    if (RAND_bytes(iv, BLOB_IV_LEN) != 1) {
        st = kms_error(err, "KMSInternalException", "random source failed");
        goto done;
    }
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_EncryptInit_ex2(ctx, k->aes_gcm, mk->key, iv, NULL) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1 ||
        EVP_EncryptUpdate(ctx, body, &n, plaintext, (int)plaintext_len) != 1 ||
        EVP_EncryptFinal_ex(ctx, body + n, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, BLOB_TAG_LEN, tag) != 1) {
        st = kms_error(err, "KMSInternalException", "encryption failed");
        goto done;
    }
    ks_bytes_free(out);
    out->data = blob;
    out->len = blob_len;
    blob = NULL;
done:
    EVP_CIPHER_CTX_free(ctx);
    free(aad);
    free(blob);
    return st;
}

/* Decrypts an authenticated blob of mk (header already checked) into a secret buffer. */
static ks_status open_blob(const struct local_kms *k, const struct master_key *mk,
                           const unsigned char *blob, size_t blob_len, const struct ks_ec *ec,
                           unsigned char **plaintext, size_t *plaintext_len, struct ks_error *err)
{
    size_t body_len = blob_len - BLOB_OVERHEAD;
    const unsigned char *iv = blob + BLOB_HEADER_LEN;
    const unsigned char *body = iv + BLOB_IV_LEN;
    unsigned char tag[BLOB_TAG_LEN];
    unsigned char *pt, *aad = NULL;
    size_t aad_len = 0;
    EVP_CIPHER_CTX *ctx = NULL;
    ks_status st;
    int n;

    st = make_aad(blob, ec, &aad, &aad_len, err);
    if (st != KS_OK)
        return st;
    pt = ks_secret_alloc(body_len);
    if (!pt) {
        free(aad);
        return ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    }
    /* EVP_CTRL_AEAD_SET_TAG takes a non-const buffer: copy instead of casting const away. */
    memcpy(tag, body + body_len, BLOB_TAG_LEN);
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_DecryptInit_ex2(ctx, k->aes_gcm, mk->key, iv, NULL) != 1) {
        st = kms_error(err, "KMSInternalException", "decryption failed");
        goto done;
    }
    /* Any failure from here on is the ciphertext's or the context's: a wrong tag. */
    if (EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1 ||
        EVP_DecryptUpdate(ctx, pt, &n, body, (int)body_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, BLOB_TAG_LEN, tag) != 1 ||
        EVP_DecryptFinal_ex(ctx, pt + n, &n) != 1) {
        st = kms_error(err, "InvalidCiphertextException",
                       "the ciphertext or its encryption context is invalid");
        goto done;
    }
    *plaintext = pt;
    *plaintext_len = body_len;
    pt = NULL;
done:
    EVP_CIPHER_CTX_free(ctx);
    ks_secret_free(pt, body_len);
    free(aad);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Operations                                                                                  */

static struct local_kms *local_of(struct ks_kms *k)
{
    return (struct local_kms *)k;
}

/* The key a request's KeyId names (AWS: a missing KeyId is a validation error, one that names
 * no key NotFoundException). member is the request member's name for the message. */
static ks_status resolve_key(const struct local_kms *k, const char *key_id, const char *member,
                             const struct master_key **out, struct ks_error *err)
{
    char uuid[KS_UUID_LEN + 1];
    unsigned char id[KEY_UUID_BIN_LEN];
    size_t len;

    if (!key_id || !*key_id)
        return kms_error(err, "ValidationException",
                         "1 validation error detected: Value at '%s' "
                         "failed to satisfy constraint: Member must have length greater "
                         "than or equal to 1",
                         member);
    len = strlen(key_id);
    if (len > KMS_KEY_ID_MAX)
        return kms_error(err, "ValidationException",
                         "1 validation error detected: Value at '%s' "
                         "failed to satisfy constraint: Member must have length less than "
                         "or equal to %d",
                         member, KMS_KEY_ID_MAX);
    if (key_id_uuid(key_id, uuid) != 0)
        return kms_error(err, "NotFoundException", "Invalid keyId '%.120s'", key_id);
    uuid_to_bin(uuid, id);
    *out = key_set_find(&k->set, id);
    if (!*out)
        return kms_error(err, "NotFoundException", "Key '%s%s' does not exist", LOCAL_ARN_PREFIX,
                         uuid);
    return KS_OK;
}

/*
 * Decrypt's checks, shared with ReEncrypt: request limits, the given KeyId (if any) exists and
 * is the blob's key, the blob parses and names a key of this KMS, and it authenticates.
 * On success *used is the blob's key and *plaintext a secret buffer the caller frees.
 */
static ks_status unwrap(const struct local_kms *k, const char *key_id, const char *member,
                        const unsigned char *blob, size_t blob_len, const struct ks_ec *ec,
                        const struct master_key **used, unsigned char **plaintext,
                        size_t *plaintext_len, struct ks_error *err)
{
    const struct master_key *given = NULL, *mk;
    ks_status st;

    if (!blob || blob_len < 1 || blob_len > KMS_CIPHERTEXT_MAX)
        return kms_error(err, "ValidationException",
                         "1 validation error detected: Value at "
                         "'ciphertextBlob' failed to satisfy constraint: Member must have "
                         "length between 1 and %d",
                         KMS_CIPHERTEXT_MAX);
    if (key_id && (st = resolve_key(k, key_id, member, &given, err)) != KS_OK)
        return st;
    /* A plaintext is at least 1 byte (Encrypt, GenerateDataKey*), so a valid blob is longer
     * than its overhead. */
    if (blob_len <= BLOB_OVERHEAD || blob[0] != BLOB_VERSION)
        return kms_error(err, "InvalidCiphertextException",
                         "the ciphertext is not a local KMS ciphertext");
    if (given && memcmp(given->id, blob + 1, KEY_UUID_BIN_LEN) != 0)
        return kms_error(err, "IncorrectKeyException",
                         "the key ID in the request does not identify the KMS key that "
                         "encrypted the ciphertext");
    /* The blob names its key; a key this KMS does not hold means the blob is not ours or was
     * changed. AWS KMS treats a ciphertext it cannot attribute as invalid, not as a missing key. */
    mk = given ? given : key_set_find(&k->set, blob + 1);
    if (!mk)
        return kms_error(err, "InvalidCiphertextException",
                         "the ciphertext names no key of this KMS");
    st = open_blob(k, mk, blob, blob_len, ec, plaintext, plaintext_len, err);
    if (st == KS_OK)
        *used = mk;
    return st;
}

/* Moves res into *out, releasing out's previous contents (out must be initialized). */
static void result_commit(struct ks_kms_result *out, struct ks_kms_result *res)
{
    ks_kms_result_free(out);
    *out = *res;
    ks_kms_result_init(res);
}

static ks_status generate_data_key_common(struct ks_kms *kms, const char *key_id,
                                          size_t number_of_bytes, const struct ks_ec *ec,
                                          int with_plaintext, struct ks_kms_result *out,
                                          struct ks_error *err)
{
    const struct local_kms *k = local_of(kms);
    const struct master_key *mk;
    struct ks_kms_result res;
    unsigned char *data_key;
    ks_status st;

    if (number_of_bytes < 1 || number_of_bytes > KMS_DATA_KEY_MAX)
        return kms_error(err, "ValidationException",
                         "1 validation error detected: Value '%zu' at "
                         "'numberOfBytes' failed to satisfy constraint: Member must have "
                         "value between 1 and %d",
                         number_of_bytes, KMS_DATA_KEY_MAX);
    st = resolve_key(k, key_id, "keyId", &mk, err);
    if (st != KS_OK)
        return st;
    data_key = ks_secret_alloc(number_of_bytes);
    if (!data_key)
        return ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    if (RAND_priv_bytes(data_key, (int)number_of_bytes) != 1) {
        ks_secret_free(data_key, number_of_bytes);
        return kms_error(err, "KMSInternalException", "random source failed");
    }
    ks_kms_result_init(&res);
    st = seal(k, mk, data_key, number_of_bytes, ec, &res.ciphertext, err);
    if (st == KS_OK && !(res.key_id = strdup(mk->arn)))
        st = ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    if (st == KS_OK && with_plaintext) {
        res.plaintext = data_key;
        res.plaintext_len = number_of_bytes;
        data_key = NULL;
    }
    ks_secret_free(data_key, number_of_bytes);
    if (st == KS_OK)
        result_commit(out, &res);
    ks_kms_result_free(&res);
    return st;
}

static ks_status local_generate_data_key_without_plaintext(
    struct ks_kms *k, const struct ks_kms_call *c, const char *key_id, size_t number_of_bytes,
    const struct ks_ec *ec, struct ks_kms_result *out, struct ks_error *err)
{
    (void)c; /* grant tokens mean nothing to the local KMS (kms.h) */
    return generate_data_key_common(k, key_id, number_of_bytes, ec, 0, out, err);
}

static ks_status local_generate_data_key(struct ks_kms *k, const struct ks_kms_call *c,
                                         const char *key_id, size_t number_of_bytes,
                                         const struct ks_ec *ec, struct ks_kms_result *out,
                                         struct ks_error *err)
{
    (void)c;
    return generate_data_key_common(k, key_id, number_of_bytes, ec, 1, out, err);
}

static ks_status local_encrypt(struct ks_kms *kms, const struct ks_kms_call *c, const char *key_id,
                               const unsigned char *plaintext, size_t plaintext_len,
                               const struct ks_ec *ec, struct ks_kms_result *out,
                               struct ks_error *err)
{
    const struct local_kms *k = local_of(kms);
    const struct master_key *mk;
    struct ks_kms_result res;
    ks_status st;

    (void)c;
    if (!plaintext || plaintext_len < 1 || plaintext_len > KMS_PLAINTEXT_MAX)
        return kms_error(err, "ValidationException",
                         "1 validation error detected: Value at "
                         "'plaintext' failed to satisfy constraint: Member must have length "
                         "between 1 and %d",
                         KMS_PLAINTEXT_MAX);
    st = resolve_key(k, key_id, "keyId", &mk, err);
    if (st != KS_OK)
        return st;
    ks_kms_result_init(&res);
    st = seal(k, mk, plaintext, plaintext_len, ec, &res.ciphertext, err);
    if (st == KS_OK && !(res.key_id = strdup(mk->arn)))
        st = ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    if (st == KS_OK)
        result_commit(out, &res);
    ks_kms_result_free(&res);
    return st;
}

static ks_status local_decrypt(struct ks_kms *kms, const struct ks_kms_call *c, const char *key_id,
                               const unsigned char *ciphertext, size_t ciphertext_len,
                               const struct ks_ec *ec, struct ks_kms_result *out,
                               struct ks_error *err)
{
    const struct local_kms *k = local_of(kms);
    const struct master_key *mk = NULL;
    struct ks_kms_result res;
    ks_status st;

    (void)c;
    ks_kms_result_init(&res);
    st = unwrap(k, key_id, "keyId", ciphertext, ciphertext_len, ec, &mk, &res.plaintext,
                &res.plaintext_len, err);
    if (st == KS_OK && !(res.key_id = strdup(mk->arn)))
        st = ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    if (st == KS_OK)
        result_commit(out, &res);
    ks_kms_result_free(&res);
    return st;
}

static ks_status local_re_encrypt(struct ks_kms *kms, const struct ks_kms_call *c,
                                  const unsigned char *ciphertext, size_t ciphertext_len,
                                  const struct ks_ec *source_ec, const char *source_key_id,
                                  const char *destination_key_id,
                                  const struct ks_ec *destination_ec, struct ks_kms_result *out,
                                  struct ks_error *err)
{
    const struct local_kms *k = local_of(kms);
    const struct master_key *src = NULL, *dst;
    struct ks_kms_result res;
    unsigned char *plaintext = NULL;
    size_t plaintext_len = 0;
    ks_status st;

    (void)c;
    /* The destination first: a bad one fails the call before any plaintext exists. */
    st = resolve_key(k, destination_key_id, "destinationKeyId", &dst, err);
    if (st != KS_OK)
        return st;
    st = unwrap(k, source_key_id, "sourceKeyId", ciphertext, ciphertext_len, source_ec, &src,
                &plaintext, &plaintext_len, err);
    if (st != KS_OK)
        return st;
    ks_kms_result_init(&res);
    st = seal(k, dst, plaintext, plaintext_len, destination_ec, &res.ciphertext, err);
    ks_secret_free(plaintext, plaintext_len); /* the intermediate plaintext never leaves */
    if (st == KS_OK &&
        (!(res.key_id = strdup(dst->arn)) || !(res.source_key_id = strdup(src->arn))))
        st = ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    if (st == KS_OK)
        result_commit(out, &res);
    ks_kms_result_free(&res);
    return st;
}

static ks_status local_ping(struct ks_kms *k, struct ks_error *err)
{
    (void)k; /* the keys are in memory: nothing can be unreachable */
    (void)err;
    return KS_OK;
}

static void local_destroy(struct ks_kms *kms)
{
    struct local_kms *k = local_of(kms);
    key_set_free(&k->set);
    EVP_CIPHER_free(k->aes_gcm);
    free(k);
}

static const struct ks_kms_ops local_ops = {
    .version = KS_KMS_OPS_VERSION,
    .name = "local",
    .generate_data_key_without_plaintext = local_generate_data_key_without_plaintext,
    .generate_data_key = local_generate_data_key,
    .encrypt = local_encrypt,
    .decrypt = local_decrypt,
    .re_encrypt = local_re_encrypt,
    .ping = local_ping,
    .destroy = local_destroy,
};

/* ------------------------------------------------------------------------------------------ */
/* Open                                                                                        */

/* A key that would have to be created when the caller forbids it (kms.h). */
static ks_status refuse_missing_file(const char *path, struct ks_error *err)
{
    return ks_error_set(err, KS_E_NOT_FOUND,
                        "the local KMS key file %s does not exist: refusing to create a new master "
                        "key (it could not decrypt existing items); restore the key file or point "
                        "key_file at it",
                        path);
}

static ks_status refuse_missing_key(const char *path, const char *uuid, struct ks_error *err)
{
    return ks_error_set(
        err, KS_E_NOT_FOUND,
        "the local KMS key file %s has no key %s: refusing to create it (it could "
        "not decrypt existing items); restore the key file that holds it or correct "
        "kms_key_arn",
        path, uuid);
}

/* Reads (or creates, if allowed) the key file and adds the ensured keys; s holds the result. */
static ks_status load_keys(const char *path, const char *const *ensure_arns, size_t n_ensure_arns,
                           enum ks_kms_local_create create, struct key_set *s, struct ks_error *err)
{
    int attempt;

    /* Two attempts: if another process creates the file between our read and our O_EXCL
     * create, read what it wrote instead of overwriting it. */
    for (attempt = 0; attempt < 2; attempt++) {
        char *text = NULL;
        size_t text_len = 0, i;
        int missing, dirty = 0;
        ks_status st;

        st = load_key_file(path, s, &missing, err);
        if (st == KS_OK && missing && create == KS_KMS_LOCAL_NO_CREATE)
            st = refuse_missing_file(path, err);
        if (st == KS_OK && missing)
            st = key_set_generate(s, NULL, err); /* the default key comes first */
        for (i = 0; st == KS_OK && i < n_ensure_arns; i++) {
            char uuid[KS_UUID_LEN + 1];
            unsigned char id[KEY_UUID_BIN_LEN];

            (void)key_id_uuid(ensure_arns[i], uuid); /* checked by the caller */
            uuid_to_bin(uuid, id);
            if (!key_set_find(s, id) && create == KS_KMS_LOCAL_NO_CREATE) {
                st = refuse_missing_key(path, uuid, err);
            } else if (!key_set_find(s, id)) {
                st = key_set_generate(s, uuid, err);
                dirty = 1;
            }
        }
        if (st == KS_OK && (missing || dirty))
            st = render_key_file(s, &text, &text_len, err);
        if (st == KS_OK && missing)
            st = create_key_file(path, text, text_len, err);
        else if (st == KS_OK && dirty)
            st = replace_key_file(path, text, text_len, err);
        ks_secret_free(text, text_len);
        if (st == KS_OK)
            return KS_OK;
        key_set_free(s);
        if (st != KS_E_ALREADY_EXISTS)
            return st;
    }
    return ks_error_set(err, KS_E_CONFIG, "key file %s: created concurrently by another process",
                        path);
}

ks_status ks_kms_local_open(const char *key_file, const char *const *ensure_arns,
                            size_t n_ensure_arns, enum ks_kms_local_create create,
                            struct ks_kms **out, struct ks_error *err)
{
    struct key_set set = {NULL, 0, 0};
    struct local_kms *k;
    size_t i;
    ks_status st;

    if (!key_file || !*key_file || !out)
        return ks_error_set(err, KS_E_CONFIG, "local KMS: key_file is required");
    if (n_ensure_arns && !ensure_arns)
        return ks_error_set(err, KS_E_CONFIG, "local KMS: ensure_arns is NULL");
    /* Check every ARN before touching the file, so a bad config writes nothing. Only full
     * ARNs: a config names keys by ARN (kms_key_arn), never by bare id. */
    for (i = 0; i < n_ensure_arns; i++) {
        char uuid[KS_UUID_LEN + 1];
        const char *arn = ensure_arns[i];
        if (!arn || strncmp(arn, LOCAL_ARN_PREFIX, LOCAL_ARN_PREFIX_LEN) != 0 ||
            key_id_uuid(arn, uuid) != 0)
            return ks_error_set(err, KS_E_CONFIG,
                                "key ARN '%.120s' is not a local KMS key ARN "
                                "(" LOCAL_ARN_PREFIX "<lowercase uuid>)",
                                arn ? arn : "(null)");
    }
    k = calloc(1, sizeof *k);
    if (!k)
        return ks_error_set(err, KS_E_INTERNAL, "local KMS: out of memory");
    /* Fetch the cipher once (OpenSSL crypto(7), "Performance": explicit fetching avoids a
     * lookup per call); the EVP_CIPHER is then shared read-only by every call. */
    k->aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    if (!k->aes_gcm) {
        free(k);
        return ks_error_set(err, KS_E_CONFIG, "local KMS: OpenSSL has no AES-256-GCM");
    }
    st = load_keys(key_file, ensure_arns, n_ensure_arns, create, &set, err);
    if (st != KS_OK) {
        EVP_CIPHER_free(k->aes_gcm);
        free(k);
        return st;
    }
    k->base.ops = &local_ops;
    k->set = set;
    *out = &k->base;
    return KS_OK;
}

ks_status ks_kms_local_default_arn(struct ks_kms *k, char *out, size_t out_size)
{
    const struct local_kms *lk;

    if (!k || k->ops != &local_ops || !out)
        return KS_E_INVALID;
    lk = local_of(k);
    if (lk->set.n == 0 || out_size < LOCAL_ARN_LEN + 1)
        return KS_E_INVALID;
    memcpy(out, lk->set.keys[0].arn, LOCAL_ARN_LEN + 1);
    return KS_OK;
}

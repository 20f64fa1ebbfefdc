/* sipbridge's native per-call audio port: a pjmedia port whose put_frame/get_frame never enter
 * Python.
 *
 * pjmedia's conference clock calls get_frame (the agent's next 20 ms, towards the caller) and
 * put_frame (the caller's 20 ms) once per tick. Both only move bytes between the frame and two
 * single-producer/single-consumer rings; Python (one pump thread per worker, see pump.py) drains
 * the caller ring and fills the agent ring once per tick for all of its calls.
 *
 *   caller ring: producer put_frame (clock thread), consumer the pump. Each frame is stamped
 *                with the port's bind epoch, so the pump can drop what a previous call left.
 *   agent ring:  producer the pump, consumer get_frame. Each frame carries the clear
 *                generation it was pulled under; get_frame drops frames of an older generation,
 *                so a clear (barge-in) silences the very next packet.
 *   wake:        put_frame writes the eventfd once a caller ring holds wake_every frames
 *                (sip.pump_ticks, 1..3): the pump then runs every N ticks over N frames a call.
 *   paused:      while set, get_frame sends silence and keeps the agent frame the ring holds
 *                (pulled before the pause, so already counted as played): it goes out on
 *                resume, and a clear drops it (the pump reports it unsent: PortFlags.unsent).
 *
 * The pjmedia structs are declared here from the 2.15 headers (the wheel ships none); the
 * Python side checks every offset used against the running library before a port is made
 * (layout.py) and refuses to start otherwise. This file calls no pjlib function: it links
 * against libc only, so its rings can be tested without pjsua. A port is never freed while
 * the conference may still call it: pjmedia calls on_destroy when its last reference goes.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- pjmedia 2.15 declarations (verified at start-up, see layout.py) ------------------- */
typedef struct { char *ptr; long slen; } sb_pj_str;

typedef struct {
    uint32_t id, type, detail_type;                 /* pjmedia_format head */
    uint32_t clock_rate, channel_count, frame_time_usec, bits_per_sample, avg_bps, max_bps;
} sb_pj_format;                                     /* det is a 24-byte union (audio/video) */

typedef struct {
    sb_pj_str name;
    uint32_t signature;
    uint32_t dir;
    sb_pj_format fmt;
} sb_pj_port_info;

typedef struct {
    uint32_t type;                                  /* pjmedia_frame_type */
    void *buf;
    size_t size;
    uint64_t timestamp;
    uint32_t bit_info;
} sb_pj_frame;

typedef struct sb_pj_port sb_pj_port;
struct sb_pj_port {
    sb_pj_port_info info;
    void *pdata;
    long ldata;
    void *grp_lock;
    void *get_clock_src;
    int (*put_frame)(sb_pj_port *, sb_pj_frame *);
    int (*get_frame)(sb_pj_port *, sb_pj_frame *);
    int (*on_destroy)(sb_pj_port *);
};

enum { FRAME_NONE = 0, FRAME_AUDIO = 1 };
enum { FORMAT_L16 = 0, MEDIA_TYPE_AUDIO = 1, DETAIL_AUDIO = 1, DIR_BOTH = 3 };
#define SIGNATURE 0x53425054u   /* 'SBPT' */

/* ---- rings ------------------------------------------------------------------------------- */
#define MAX_FRAME_BYTES 640      /* 20 ms at 16 kHz, 16-bit mono */
#define IN_SLOTS 32              /* 640 ms of caller audio before frames are dropped */
#define OUT_SLOTS 8

typedef struct { uint32_t tag; uint32_t len; uint8_t data[MAX_FRAME_BYTES]; } sb_slot;

typedef struct {
    _Atomic uint32_t head;       /* next slot the producer writes (free-running) */
    _Atomic uint32_t tail;       /* next slot the consumer reads */
} sb_ring;

enum { ST_FRAMES_IN, ST_FRAMES_EMPTY, ST_IN_DROPPED, ST_FRAMES_OUT, ST_UNDERRUNS,
       ST_STALE_DROPPED, ST_PAUSED_FRAMES, ST_OUT_IDLE, ST_COUNT };

typedef struct {
    sb_pj_port base;             /* first: pjmedia sees a pjmedia_port */
    char name[32];
    uint32_t frame_bytes;
    _Atomic int bound;
    _Atomic int paused;
    _Atomic uint32_t epoch;      /* bind epoch, stamped on caller frames */
    _Atomic uint32_t gen;        /* clear generation, compared with agent frames */
    _Atomic int destroyed;
    sb_ring in, out;
    sb_slot in_slots[IN_SLOTS];
    sb_slot out_slots[OUT_SLOTS];
    _Atomic uint64_t stats[ST_COUNT];
} sb_port;

static _Atomic int wake_fd = -1;
static _Atomic int wake_pending = 0;
static _Atomic uint32_t wake_every = 1;   /* caller frames a ring holds before it wakes the pump */

static void bump(sb_port *p, int which) { atomic_fetch_add_explicit(&p->stats[which], 1, memory_order_relaxed); }

static void wake(void) {
    int fd = atomic_load_explicit(&wake_fd, memory_order_acquire);
    if (fd >= 0 && !atomic_exchange_explicit(&wake_pending, 1, memory_order_acq_rel)) {
        uint64_t one = 1;
        ssize_t r = write(fd, &one, sizeof one);
        (void)r;
    }
}

static void fill(sb_pj_frame *frame, const void *data, size_t n) {
    size_t size = frame->size < n ? frame->size : n;
    if (frame->buf && size) {
        if (data) memcpy(frame->buf, data, size);
        else memset(frame->buf, 0, size);
    }
    frame->type = FRAME_AUDIO;
    frame->size = size;
}

/* ---- pjmedia callbacks (clock thread) ------------------------------------------------------ */
static int on_put_frame(sb_pj_port *base, sb_pj_frame *frame) {
    sb_port *p = (sb_port *)base;
    if (!atomic_load_explicit(&p->bound, memory_order_acquire)) return 0;
    uint32_t head = atomic_load_explicit(&p->in.head, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&p->in.tail, memory_order_acquire);
    if (head - tail >= IN_SLOTS) { bump(p, ST_IN_DROPPED); wake(); return 0; }
    sb_slot *s = &p->in_slots[head % IN_SLOTS];
    if (frame->type == FRAME_AUDIO && frame->buf && frame->size == p->frame_bytes) {
        memcpy(s->data, frame->buf, p->frame_bytes);
        bump(p, ST_FRAMES_IN);
    } else {   /* no RTP this tick: the turn engine must still see 20 ms pass */
        memset(s->data, 0, p->frame_bytes);
        bump(p, ST_FRAMES_EMPTY);
    }
    s->len = p->frame_bytes;
    s->tag = atomic_load_explicit(&p->epoch, memory_order_acquire);
    atomic_store_explicit(&p->in.head, head + 1, memory_order_release);
    /* sip.pump_ticks: the pump runs once its calls hold N ticks of audio (1: every tick) */
    if (head + 1 - atomic_load_explicit(&p->in.tail, memory_order_acquire)
            >= atomic_load_explicit(&wake_every, memory_order_relaxed))
        wake();
    return 0;
}

static int on_get_frame(sb_pj_port *base, sb_pj_frame *frame) {
    sb_port *p = (sb_port *)base;
    if (!atomic_load_explicit(&p->bound, memory_order_acquire)) {
        bump(p, ST_OUT_IDLE);
        fill(frame, NULL, p->frame_bytes);
        return 0;
    }
    int paused = atomic_load_explicit(&p->paused, memory_order_acquire);
    uint32_t gen = atomic_load_explicit(&p->gen, memory_order_acquire);
    uint32_t tail = atomic_load_explicit(&p->out.tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&p->out.head, memory_order_acquire);
    while (tail != head) {
        sb_slot *s = &p->out_slots[tail % OUT_SLOTS];
        tail++;
        if (s->tag != gen) { bump(p, ST_STALE_DROPPED); continue; }
        if (paused) { tail--; break; }   /* kept: it plays on resume, a clear drops it */
        fill(frame, s->data, s->len);
        atomic_store_explicit(&p->out.tail, tail, memory_order_release);
        bump(p, ST_FRAMES_OUT);
        return 0;
    }
    atomic_store_explicit(&p->out.tail, tail, memory_order_release);
    bump(p, paused ? ST_PAUSED_FRAMES : ST_UNDERRUNS);
    fill(frame, NULL, p->frame_bytes);
    return 0;
}

static int on_destroy(sb_pj_port *base) {
    sb_port *p = (sb_port *)base;
    atomic_store(&p->destroyed, 1);
    atomic_store(&p->bound, 0);
    /* freed by sb_port_free once Python has let go too: the pool may still hold it */
    return 0;
}

/* ---- Python side --------------------------------------------------------------------------- */
sb_port *sb_port_new(uint32_t rate, uint32_t frame_bytes, const char *name) {
    if (frame_bytes == 0 || frame_bytes > MAX_FRAME_BYTES || frame_bytes % 2 || rate == 0) return NULL;
    sb_port *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    strncpy(p->name, name ? name : "sbport", sizeof p->name - 1);
    p->frame_bytes = frame_bytes;
    uint32_t spf = frame_bytes / 2;
    sb_pj_port_info *info = &p->base.info;
    info->name.ptr = p->name;
    info->name.slen = (long)strlen(p->name);
    info->signature = SIGNATURE;
    info->dir = DIR_BOTH;
    info->fmt.id = FORMAT_L16;
    info->fmt.type = MEDIA_TYPE_AUDIO;
    info->fmt.detail_type = DETAIL_AUDIO;
    info->fmt.clock_rate = rate;
    info->fmt.channel_count = 1;
    info->fmt.frame_time_usec = (uint32_t)((uint64_t)spf * 1000000u / rate);
    info->fmt.bits_per_sample = 16;
    info->fmt.avg_bps = info->fmt.max_bps = rate * 16;
    p->base.put_frame = on_put_frame;
    p->base.get_frame = on_get_frame;
    p->base.on_destroy = on_destroy;
    return p;
}

/* Only for a port pjmedia never saw (or one whose on_destroy has run). */
void sb_port_free(sb_port *p) { free(p); }

/* A new call (or none: bound = 0). Bumps the epoch and the generation: nothing queued for the
 * previous call is delivered to or sent for this one. */
uint32_t sb_port_bind(sb_port *p, int bound) {
    uint32_t epoch = atomic_fetch_add(&p->epoch, 1) + 1;
    atomic_fetch_add(&p->gen, 1);
    atomic_store(&p->paused, 0);
    if (bound) for (int i = 0; i < ST_COUNT; i++) atomic_store(&p->stats[i], 0);
    atomic_store_explicit(&p->bound, bound ? 1 : 0, memory_order_release);
    return epoch;
}

void sb_port_pause(sb_port *p, int paused) { atomic_store_explicit(&p->paused, paused ? 1 : 0, memory_order_release); }
int sb_port_paused(sb_port *p) { return atomic_load(&p->paused); }
uint32_t sb_port_clear(sb_port *p) { return atomic_fetch_add_explicit(&p->gen, 1, memory_order_acq_rel) + 1; }
uint32_t sb_port_gen(sb_port *p) { return atomic_load_explicit(&p->gen, memory_order_acquire); }
uint32_t sb_port_epoch(sb_port *p) { return atomic_load_explicit(&p->epoch, memory_order_acquire); }
int sb_port_destroyed(sb_port *p) { return atomic_load(&p->destroyed); }

/* Agent audio for a coming tick, pulled under generation ``gen``. 1: queued, 0: ring full,
 * -1: bad size. */
int sb_port_push_out(sb_port *p, const void *data, uint32_t n, uint32_t gen) {
    if (n > MAX_FRAME_BYTES) return -1;
    uint32_t head = atomic_load_explicit(&p->out.head, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&p->out.tail, memory_order_acquire);
    if (head - tail >= OUT_SLOTS) return 0;
    sb_slot *s = &p->out_slots[head % OUT_SLOTS];
    memcpy(s->data, data, n);
    s->len = n;
    s->tag = gen;
    atomic_store_explicit(&p->out.head, head + 1, memory_order_release);
    return 1;
}

uint32_t sb_port_out_queued(sb_port *p) {
    return atomic_load_explicit(&p->out.head, memory_order_acquire)
         - atomic_load_explicit(&p->out.tail, memory_order_acquire);
}

/* The oldest caller frame into ``dst``: its size, or -1 when none; ``*tag`` its bind epoch. */
int sb_port_pop_in(sb_port *p, void *dst, uint32_t cap, uint32_t *tag) {
    uint32_t tail = atomic_load_explicit(&p->in.tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&p->in.head, memory_order_acquire);
    if (tail == head) return -1;
    sb_slot *s = &p->in_slots[tail % IN_SLOTS];
    uint32_t n = s->len < cap ? s->len : cap;
    memcpy(dst, s->data, n);
    *tag = s->tag;
    atomic_store_explicit(&p->in.tail, tail + 1, memory_order_release);
    return (int)n;
}

void sb_port_stats(sb_port *p, uint64_t *out, int n) {
    for (int i = 0; i < n && i < ST_COUNT; i++) out[i] = atomic_load(&p->stats[i]);
}

/* One eventfd for the process: put_frame writes to it once until the pump acknowledges. */
void sb_set_wake_fd(int fd) { atomic_store(&wake_pending, 0); atomic_store(&wake_fd, fd); }
void sb_wake_ack(void) { atomic_store_explicit(&wake_pending, 0, memory_order_release); }
/* Wake the pump when a caller ring holds ``n`` frames (the pump's ticks); 0 if out of range. */
int sb_set_wake_every(uint32_t n) {
    if (n < 1 || n > IN_SLOTS / 2 || n > OUT_SLOTS) return 0;
    atomic_store(&wake_every, n);
    return 1;
}

/* Offsets and sizes this file was compiled with, for the start-up check (layout.py). */
int sb_layout(uint64_t *out, int n) {
    uint64_t v[] = {
        sizeof(sb_pj_port_info), offsetof(sb_pj_port_info, signature),
        offsetof(sb_pj_port_info, dir), offsetof(sb_pj_port_info, fmt),
        offsetof(sb_pj_format, clock_rate), sizeof(sb_pj_format),
        offsetof(sb_pj_port, grp_lock), offsetof(sb_pj_port, put_frame),
        offsetof(sb_pj_port, get_frame), offsetof(sb_pj_port, on_destroy), sizeof(sb_pj_port),
        offsetof(sb_pj_frame, buf), offsetof(sb_pj_frame, size),
        offsetof(sb_pj_frame, timestamp), sizeof(sb_pj_frame),
        MAX_FRAME_BYTES, IN_SLOTS, OUT_SLOTS, ST_COUNT,
    };
    int count = (int)(sizeof v / sizeof v[0]);
    for (int i = 0; i < n && i < count; i++) out[i] = v[i];
    return count;
}

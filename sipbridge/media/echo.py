"""Line echo canceller for the caller leg: the agent's own voice, reflected back, removed before the VAD.

On a phone call the caller's leg carries an echo of what the bridge sends: a hybrid or a
speakerphone past the network reflects it 6-20 dB down, 0-60 ms after it reached them (up to
~200 ms after the bridge sent it, with the network round trip and both jitter buffers),
through a short dispersive response and two G.711 codings. Barge-in must not fire on that
echo, yet must fire when the caller talks over it. The bridge knows the reference exactly:
every 20 ms frame it hands to RTP. :class:`EchoCanceller` takes that frame (:meth:`far`) and
the caller frame of the same media-clock tick (:meth:`near`) and returns the caller frame
with the echo taken out, for the VAD (and, if wanted, upstream).

Pure and sans-I/O: time is the count of frames fed, never a clock; no threads, no logging.
One instance per call, driven from the media thread only. 16 kHz, 20 ms frames by default;
8 kHz (160-sample frames) for a media path at the line's own rate: every constant in samples is
derived from the rate, and the figures below hold at both (bench/echo.py ``--rate 8000``).

How (one 2N-point FFT domain, N = one frame, so each far frame is transformed once):

* **Far spectra.** Far frame ``t`` is transformed with its predecessor,
  ``X_t = FFT([x_{t-1}; x_t])``, and kept in a ring; lag partition ``p`` (an echo ``pN`` to
  ``pN + N - 1`` samples late) reads ``X_{t-p}``.
* **Bulk delay: generalised cross-correlation (GCC).** The cross-spectrum of the near frame
  with every partition of the ring is accumulated and turned into the correlation over all
  lags 0..``max_delay_ms``, SCOT weighted (each bin divided by the geometric mean of far and
  near power) on 200-3700 Hz only: the echo came through 8 kHz G.711, nothing above 4 kHz is
  coherent (so at 16 kHz the search runs on half the bins, at every other lag; at 8 kHz on all
  of them, at every lag: the same 0.125 ms grid and cost). That is a whitened impulse
  response with a sharp peak at the echo's main tap; the peak over the RMS of all lags is
  the confidence (>= 8, twice in a row, to act). While acquiring, every frame is
  accumulated with a ~0.6 s memory; once placed, every other frame with ~0.2 s, so an echo
  that moves (a jitter buffer re-sizing, a transfer) is seen within ~0.2-0.3 s: the residual
  model is then distrusted at once and the filter re-placed if the echo left its span. A rival
  peak must be twice the one at the current delay (a tone common to both ends, e.g. mains
  hum, makes peaks at multiples of its period). At 8 kHz the near frame the search correlates
  is tapered over 2 ms at each end (``search_taper_ms``): a rectangular frame's edges make a
  spurious peak at every whole number of frames, and zeroing those lags, as 16 kHz still does,
  hides an echo of a whole number of packets, the usual delay at 8 kHz where no resampler
  shifts it (see :meth:`EchoCanceller._estimate`).
* **Linear filter: two-partition frequency-domain NLMS** (overlap-save with the gradient
  constraint, every other update; the multi-delay form of Soo & Pang) on partitions ``p0``
  and ``p0 + 1``, placed so the GCC peak lies at least ~3 ms inside: 2N taps (40 ms at
  16 kHz), enough for a dispersive tail. At the first placement both filters start from the
  least-squares fit of the search's own statistics (cross-correlation at every lag, far
  autocorrelation; a ~1 ms Toeplitz solve), worth several dB at once: after 2 s of far speech
  11-15 dB instead of 7-10. The reported delay is the largest tap of the filter in use (sample
  exact), the GCC peak before the filter has adapted.
* **Double talk: two filters.** A background filter adapts on every far-active frame (every
  other one once its residual is under -20 dB); the foreground filter, whose output is used,
  takes the background's coefficients only while the background's error is clearly (3 dB)
  lower, and the background is reset to the foreground when it does clearly worse. Caller
  speech over the echo makes the background wander but never the foreground; a changed echo
  path is followed as soon as the background has learnt it. No double-talk detector is in the
  adaptation loop. An error 2 dB above the near signal on three loud frames in a row (a caller
  can only make the error smaller than the near signal over a converged filter) also counts as
  a moved echo.
* **A one-frame slip is followed at once.** A jitter buffer ahead of the canceller that conceals
  a late packet (inserts a frame) or discards one moves the whole echo one frame against the
  reference. On loud far-active frames the foreground explains less than 6 dB of, the
  foreground shifted by one frame either way is tried on the far ring (two more inverse FFTs);
  one that leaves under a quarter of both the error and the near power is the echo itself
  (a caller's voice never makes a wrong filter explain more): the frame is suppressed, and
  on the second such frame in a row both filters move one partition with their coefficients,
  the delay search's statistics with them. Measured at 16 kHz (20-140 ms, insert and drop):
  shifted on the second frame; in the next second loud echo frames come out >= 23.8 dB down
  instead of 0-1.5 dB; a caller starting 300 ms later starts a turn in time in 34 of 36 cases
  instead of 23, and a slip under their speech costs their frames 0.3 dB instead of 1.6 (mean;
  turns then start late in 17 of 72 cases instead of 8: the echo that leaked into the gaps of
  their speech no longer carries the VAD). Echo frames out above -45 dBFS in the 2 s after a
  slip: 0-1 instead of 3-7 at 8 kHz, 8-17 at 16 kHz. No shift in 348 runs without a slip
  (double talk at -6 to +6 dB included).
* **Residual echo suppression**, one gain per frame decided in seven bands (300-3500 Hz; below
  300 Hz prompts and TTS carry too little far energy for the filter to learn, so the band would
  only add noise to the decision): per band the foreground's residual is learnt as a ratio to
  its echo estimate (on frames the estimate explains, correlation of near and estimate
  >= 0.9 / sqrt(1 + residual)), and a band keeps ``1 - overestimate * residual / error`` of
  min(error, near) power (min: misadjustment noise ahead of an echo onset is not the caller).
  The frame gain is the square root of the kept share, floored at ``-suppress_db``; echo-only
  frames drop by ``suppress_db``, frames where the caller dominates some bands keep their
  power. Gain changes are ramped over 2 ms.
* **Before a delay is known and for 0.8 s after a placement** the gain uses a bound instead: an
  echo is at least ``min_erl_db`` below the loudest far frame within reach. The bound is dropped
  for good on a line where ``acquire_give_up_ms`` of far activity showed no echo (pass-through
  from then on, though the search goes on).
* **An echo-free line is watched for less**: its search accumulates every other near frame with
  the same memory in seconds and estimates every 80 ms (every 40 ms while a peak shows). An
  echo appearing later (a transfer, a speakerphone) is placed after median 200 ms, at most
  560 ms (70 cases; searching every frame: 180 / 500 ms), and its filters start from zero: a
  least-squares fit from every other frame's statistics started filters that went astray.
* **Idle is free**: while no far frame above ``far_active_dbfs`` lies within the echo's reach,
  :meth:`EchoCanceller.near` returns its input object itself, untouched.

Observable state (also as one frozen :class:`EchoState` from :meth:`EchoCanceller.state`):
``delay_ms``, ``erle_db``, ``far_active``, ``double_talk``, ``likely_echo_only``, ``mode`` and
counters. ``likely_echo_only`` says the current near frame carries energy and none of it is
unexplained by the echo: a second line of defence for barge-in
(:meth:`EchoCanceller.echo_only_fraction` over the frames of a speech candidate).

Limits (measured, see bench/echo.py and tests/unit/media/test_echo.py): full double-talk
performance needs ~2-4 s of far speech in a call; before that a caller quieter than the
agent's echo is attenuated with it. Linear ERLE is bounded by the line's noise and the two
G.711 codings (~30 dB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
FRAME_SAMPLES = 320
_PARTITIONS = 2          # filter partitions, one frame of taps each
_RAMP_MS = 2             # a gain change is ramped over this long
_BAND_EDGE_HZ = 150.0    # raised-cosine edges of the delay search's band (a shorter weighting smears less)
_SEARCH_TAPER_MS = 2.0   # default taper of the delay search's near frame (EchoSettings.search_taper_ms)
_DECIDE_EDGES_HZ = (300, 600, 1000, 1500, 2000, 2500, 3000, 3500)  # bands the gain is decided on
_STARTUP_FRAMES = 40     # frames after a (re)placement under the bound (0.8 s)
_GCC_FORGET = (0.03, 0.2)  # per accumulated frame: acquiring (every frame, ~0.6 s), placed (every other, ~0.2 s)
_FREE_EVERY = 2          # echo-free line: the search accumulates every this many near frames ...
_FREE_FORGET = 1.0 - (1.0 - _GCC_FORGET[0]) ** _FREE_EVERY  # ... with the same memory in seconds ...
_FREE_ESTIMATE = 2       # ... and estimates the delay every this many accumulations (80 ms) ...
_FREE_HINT = 5.0         # ... or at each while the last peak was this clear (no echo: 3-5)
_RHO2 = 0.81             # the residual is learnt on frames with corr(near, estimate)^2 >= this / (1 + residual)
_NU_RATE = 0.08          # its learning rate per such frame
_NORM_A = 0.5            # smoothing of the NLMS power normalisation
_PROJECT = 2             # gradient constraint every this many background updates
_SETTLED = 0.01          # residual under -20 dB: the background adapts on every other frame only
_WORSE_RATIO = 1.6       # error over near power that only a wrong echo estimate explains
_WORSE_FRAMES = 3        # that many frames in a row: the echo moved
_WORSE_DBFS = -50.0      # ... counted on near frames above this level only
_MOVE_MS = 4.0           # the GCC peak this far from the filter's main tap: the echo moved
_SLIP_GAIN = 0.25        # the filter shifted by one frame leaves this share (-6 dB) of the error ...
_SLIP_FRAMES = 2         # ... on this many loud far-active frames in a row: the near stream slipped a frame
_HISTORY = 64            # frames of likely_echo_only kept for echo_only_fraction
_FULL_SCALE_SQ = 32768.0 * 32768.0


def _search_step(sample_rate: int, frame_samples: int, top_hz: float) -> int:
    """Lag step of the delay search: the largest that divides a frame and keeps ``top_hz`` under its Nyquist.

    Searching on 0..fs/(2 step) at every step-th lag costs 1/step of the full search and loses
    nothing the echo carries: it came through 8 kHz G.711 (2 at 16 kHz; 1 at 8 kHz, where the
    band already fills 0..fs/2).
    """
    return max(d for d in range(1, int(sample_rate / 2 // top_hz) + 1) if frame_samples % d == 0)


def _power(dbfs: float) -> float:
    """Mean square (int16 units) of a signal at ``dbfs`` RMS."""
    return _FULL_SCALE_SQ * 10.0 ** (dbfs / 10.0)


@dataclass(frozen=True)
class EchoSettings:
    """Tuning of :class:`EchoCanceller`; the defaults are the measured ones (bench/echo.py).

    ``max_delay_ms``: the longest echo delay searched (bridge send to echo back, network
    included). ``far_active_dbfs``: far frames quieter than this leave no echo worth
    cancelling (the canceller idles when none is in reach). ``near_floor_dbfs``: near frames
    quieter than this are neither echo nor double talk for the flags. ``min_erl_db``: before
    the delay is known, how far below the loudest far frame an echo is assumed to be.
    ``suppress_db``: attenuation of echo-only frames. ``overestimate``: residual echo
    over-estimation of the suppressor. ``double_talk_share``: share of the error power the
    echo does not explain that flags double talk. ``acquire_give_up_ms``: far activity
    without a detectable echo after which the line is taken as echo-free. ``mu``: NLMS step
    of the background filter. ``band_hz``: the band the delay is estimated on.
    ``echo_band_hz``: the line's audio band (4 kHz for G.711; 8 kHz for a wideband codec): no
    echo can come back above it, so the filter does not adapt there. ``search_taper_ms``: the
    raised-cosine taper at both ends of the near frame the delay search correlates; 0 leaves
    the frame rectangular and zeroes the lags that are whole frames instead (see
    :meth:`EchoCanceller._estimate`); None: 2 ms, but 0 at 16 kHz, where the canceller's
    behaviour is kept as measured before the taper existed.
    """

    max_delay_ms: int = 200
    far_active_dbfs: float = -60.0
    near_floor_dbfs: float = -62.0
    min_erl_db: float = 3.0
    suppress_db: float = 40.0
    overestimate: float = 3.0
    double_talk_share: float = 0.3
    acquire_give_up_ms: int = 4000
    mu: float = 0.5
    band_hz: tuple[float, float] = (200.0, 3700.0)
    echo_band_hz: float = 4000.0
    search_taper_ms: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.max_delay_ms <= 1000:
            raise ValueError(f"max_delay_ms must be in (0, 1000], got {self.max_delay_ms}")
        if not 0.0 < self.mu <= 1.0:
            raise ValueError(f"mu must be in (0, 1], got {self.mu}")
        if self.suppress_db < 0 or self.overestimate <= 0 or not 0 < self.double_talk_share < 1:
            raise ValueError("need suppress_db >= 0, overestimate > 0, 0 < double_talk_share < 1")
        if self.acquire_give_up_ms <= 0:
            raise ValueError(f"acquire_give_up_ms must be positive, got {self.acquire_give_up_ms}")
        lo, hi = self.band_hz
        if not 0.0 <= lo < hi:
            raise ValueError(f"band_hz must be (low, high) with low < high, got {self.band_hz}")
        if not self.echo_band_hz > hi:
            raise ValueError(f"echo_band_hz must be above band_hz, got {self.echo_band_hz}")
        if self.search_taper_ms is not None and not 0.0 <= self.search_taper_ms <= 5.0:
            raise ValueError(f"search_taper_ms must be in [0, 5] or None, got {self.search_taper_ms}")


@dataclass(frozen=True, slots=True)
class EchoState:
    """A snapshot of :class:`EchoCanceller` (for logs and tests)."""

    mode: str                      # idle | acquiring | cancelling | echo_free
    delay_ms: float | None         # far frame handed to RTP -> its echo's main tap in the near frame
    delay_confidence: float        # last GCC peak over the RMS of all lags (>= 8: a clear echo)
    erle_db: float | None          # linear filter: near power / error power, recent echo-only frames
    suppression_db: float | None   # whole canceller: near power / output power, same frames
    erl_db: float | None           # echo return loss: far power at the echo's lag / near power
    residual_db: float | None      # learnt residual echo of the filter re its echo estimate
    far_active: bool
    double_talk: bool
    likely_echo_only: bool
    frames_far: int
    frames_near: int
    frames_idle: int               # near frames returned untouched (no far frame in reach)
    frames_echo_only: int
    frames_double_talk: int
    delay_changes: int             # filter placements (the first one included)
    filter_copies: int             # background -> foreground
    filter_resets: int             # background restored from foreground
    echo_moves: int                # times the echo was seen to move while placed
    frames_searched: int = 0       # near frames the delay search accumulated
    echo_slips: int = 0            # filters shifted by one frame (a jitter buffer inserted or dropped one)


class EchoCanceller:
    """One call's line echo canceller (see the module docstring); media thread only.

    Per media-clock tick: :meth:`far` with the frame just handed to RTP, then :meth:`near`
    with the caller frame just received. (The other order also works; delays are then
    counted from the previous far frame, and an echo less than one frame late, which a real
    network never produces, could not be represented.) Frames are 1-D int16 of
    ``frame_samples`` samples; anything else raises ``ValueError``.
    """

    def __init__(self, settings: EchoSettings | None = None, *, sample_rate: int = SAMPLE_RATE,
                 frame_samples: int = FRAME_SAMPLES):
        if sample_rate < 8000 or frame_samples < 64 or frame_samples % 2:
            raise ValueError(f"need sample_rate >= 8000 and an even frame_samples >= 64, "
                             f"got {sample_rate}, {frame_samples}")
        self.settings = s = settings or EchoSettings()
        if s.band_hz[1] + _BAND_EDGE_HZ > sample_rate / 2:
            raise ValueError(f"band_hz must end {_BAND_EDGE_HZ:g} Hz below half the sample rate, got {s.band_hz}")
        self.sample_rate = sample_rate
        n = self.frame_samples = frame_samples
        size = self._fft = 2 * n
        bins = n + 1
        self._lags = int(round(s.max_delay_ms * sample_rate / 1000))
        self._p_search = self._lags // n + 1                     # partitions the GCC spans
        ring = self._ring = self._p_search + _PARTITIONS          # far frames kept
        # far side: mirrored rings, newest at _head, so [head:head + k] is newest-first
        self._xbuf = np.zeros((2 * ring, bins), np.complex128)
        self._xp2 = np.zeros((2 * ring, bins))
        self._xpow = np.zeros(2 * ring)
        self._xdirty = [False] * ring                              # slot holds a non-zero spectrum
        self._head = 0
        self._xrows = np.zeros((2, size))
        self._zero = np.zeros(bins, np.complex128)
        self._zspec = self._zero
        # The search runs on 0..fs/(2 step) only, at every step-th lag: the widest step whose
        # band still holds band_hz and its edge (2 at 16 kHz: 0-4 kHz, every other lag; 1 at 8 kHz).
        step = self._step = _search_step(sample_rate, n, s.band_hz[1] + _BAND_EDGE_HZ)
        gb = self._gbins = n // step + 1
        self._far_loud = False
        self._far_frames = 0
        self._last_active = -(1 << 40)
        # delay search
        freqs = np.arange(bins) * sample_rate / size
        edge = _BAND_EDGE_HZ
        rise = np.clip((freqs - s.band_hz[0] + edge) / edge, 0.0, 1.0)
        fall = np.clip((s.band_hz[1] + edge - freqs) / edge, 0.0, 1.0)
        self._band = (0.5 - 0.5 * np.cos(np.pi * np.minimum(rise, fall)))[:gb]
        self._gcc = np.zeros((self._p_search, gb), np.complex128)
        self._gtmp = np.zeros((self._p_search, gb), np.complex128)
        self._sxx = np.zeros(gb)
        self._syy = np.zeros(gb)
        self._acor = np.zeros(gb, np.complex128)                  # far autocorrelation, same weighting
        short = self._search_fft = size // step                   # lag step*m <- sample of a 1/step-size irfft
        self._search_index = (short - np.arange(n // step)) % short
        self._gcc_frames = 0
        self._lag_index = (size - np.arange(n)) % size
        taper_ms = s.search_taper_ms
        if taper_ms is None:
            taper_ms = 0.0 if sample_rate == 16000 else _SEARCH_TAPER_MS
        k = int(round(taper_ms * sample_rate / 1000))
        if 2 * k > n:
            raise ValueError(f"search_taper_ms must leave the frame's middle untapered, got {taper_ms}")
        self._taper: np.ndarray | None = None                     # near frame of the search: rectangular
        if k:
            ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
            self._taper = np.ones(n)
            self._taper[:k] = ramp
            self._taper[n - k:] = ramp[::-1]
        self._search_row = np.zeros(size)                         # [0; tapered near frame]
        self._move = int(_MOVE_MS * sample_rate / 1000)
        self._candidate: int | None = None
        self._confidence = 0.0
        self._away = 0
        self._acquire_frames = 0
        self._give_up = max(1, s.acquire_give_up_ms * sample_rate // 1000 // n)
        # filters [foreground, background] x partitions x bins, plus the background's taps
        self._w = np.zeros((2, _PARTITIONS, bins), np.complex128)
        self._taps = np.zeros((_PARTITIONS, size))
        self._norm = np.zeros(bins)
        # no echo above the line's band (4 kHz for G.711): the filter learns nothing there, or
        # taps driven by nothing but noise wander in the unexcited bins
        self._mu_bins = s.mu * (freqs <= s.echo_band_hz)
        self._stack = np.zeros((3, size))                         # [0; e_bg], [0; e_fg], [0; y_hat]
        self._y = np.zeros(n)
        self._p0 = 0
        self._placed = False
        self._placed_frames = 0
        self._adapted = 0
        self._delay: int | None = None
        self._s_fg = self._s_bg = 0.0
        self._better = 0
        self._worse = 0
        self._slip = 0                                             # frames in a row a shift explained better (signed)
        # residual echo per band (natural log of residual / estimate)
        edges = [min(n, int(f * size / sample_rate)) for f in _DECIDE_EDGES_HZ]
        self._decide_lo, self._decide_hi = edges[0], edges[-1]
        self._edges = np.array(edges[:-1]) - edges[0]
        self._nu = [0.0] * (len(edges) - 1)                        # ln(residual / estimate) per band
        self._sel = np.zeros((3, edges[-1] - edges[0]), np.complex128)
        self._spec_y = np.zeros(gb, np.complex128)
        self._leak = 1.0
        # suppressor, flags, statistics
        self._gain = 1.0
        ramp = self._ramp_len = max(1, sample_rate * _RAMP_MS // 1000)   # 32 samples at 16 kHz
        self._ramp = np.arange(ramp) / ramp
        self._noise = _power(-70.0)
        self._avg_y = self._avg_e = self._avg_out = self._avg_x = 0.0
        self._far_thresh = _power(s.far_active_dbfs)
        self._near_floor = _power(s.near_floor_dbfs)
        self._worse_floor = _power(_WORSE_DBFS)
        self._erl_bound = 10.0 ** (-s.min_erl_db / 10.0)
        self._gmin = 10.0 ** (-s.suppress_db / 20.0)
        self._history = np.zeros(_HISTORY, bool)
        self.echo_free = False
        self.search_held = False   # the agent's audio was stopped by a barge-in (hold_search)
        self.far_active = False
        self.double_talk = False
        self.likely_echo_only = False
        self.frames_far = self.frames_near = self.frames_idle = 0
        self.frames_echo_only = self.frames_double_talk = 0
        self.delay_changes = self.filter_copies = self.filter_resets = self.echo_moves = 0
        self.frames_searched = self.echo_slips = 0

    # -- observation ------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """``idle`` (no far audio yet), ``acquiring``, ``cancelling`` or ``echo_free``."""
        if self._placed:
            return "cancelling"
        if self.echo_free:
            return "echo_free"
        return "acquiring" if self._acquire_frames else "idle"

    @property
    def delay_samples(self) -> int | None:
        """Samples from a far sample handed to RTP to its echo's main tap (None until found)."""
        return self._delay

    @property
    def delay_ms(self) -> float | None:
        return None if self._delay is None else self._delay * 1000.0 / self.sample_rate

    @property
    def gain(self) -> float:
        """The residual suppression's gain on the last near frame (1.0: passed as it came)."""
        return self._gain

    @property
    def erle_db(self) -> float | None:
        """Echo return loss enhancement of the linear filter over recent echo-only frames."""
        if self._avg_e <= 0.0 or self._avg_y <= 0.0:
            return None
        return 10.0 * math.log10(self._avg_y / self._avg_e)

    @property
    def suppression_db(self) -> float | None:
        """Near power over output power, recent echo-only frames (filter and suppressor)."""
        if self._avg_y <= 0.0:
            return None
        return 10.0 * math.log10(self._avg_y / self._avg_out) if self._avg_out > 0.0 else math.inf

    @property
    def erl_db(self) -> float | None:
        """Echo return loss: far power at the echo's lag over near power, recent echo-only frames."""
        if self._avg_x <= 0.0 or self._avg_y <= 0.0:
            return None
        return 10.0 * math.log10(self._avg_x / self._avg_y)

    def echo_only_fraction(self, frames: int) -> float:
        """Share of the last ``frames`` near frames (at most 64) flagged ``likely_echo_only``."""
        frames = min(frames, _HISTORY, self.frames_near)
        if frames <= 0:
            return 0.0
        idx = (self.frames_near - 1 - np.arange(frames)) % _HISTORY
        return float(self._history[idx].mean())

    def state(self) -> EchoState:
        """All observable state as one frozen value."""
        return EchoState(
            mode=self.mode, delay_ms=self.delay_ms, delay_confidence=round(self._confidence, 2),
            erle_db=self.erle_db, suppression_db=self.suppression_db, erl_db=self.erl_db,
            residual_db=10.0 * math.log10(self._leak) if self._placed else None,
            far_active=self.far_active, double_talk=self.double_talk,
            likely_echo_only=self.likely_echo_only, frames_far=self.frames_far,
            frames_near=self.frames_near, frames_idle=self.frames_idle,
            frames_echo_only=self.frames_echo_only, frames_double_talk=self.frames_double_talk,
            delay_changes=self.delay_changes, filter_copies=self.filter_copies,
            filter_resets=self.filter_resets, echo_moves=self.echo_moves,
            frames_searched=self.frames_searched, echo_slips=self.echo_slips)

    def hold_search(self) -> None:
        """The agent's audio was paused or cleared for a barge-in: until it sends sound again
        (the next far frame that is not digital silence), the delay search takes no near frame.

        The near frames then are the caller talking over a silent agent, and the ring still holds
        the agent's last 200 ms, sliding out of reach a frame at a time: with far energy in one
        or two partitions only, the correlation of any voice with them is confined to those lags
        and its peak stands 8 times over the RMS of all lags, an "echo" on a line that has none
        (the wire bench's five prompts over its answer at 4 offsets, 8 kHz: placed at 10-198 ms
        in 3 of 20; on the wire, 20 ms in a pause). The next answer then started with that
        filter and its start-up bound, and a caller interrupting it was taken for its echo:
        replayed, 2 of 15 such second interruptions never cancelled, per trigger, and one
        paused 720 ms late. The filter itself still runs; an echo's placement is learnt while
        the agent talks, where it is all there is on the line.
        Unplaced, the search also forgets what it gathered: its last frames were the caller's
        first words over the agent (what paused it), and a peak they made would outlive the
        hold (the statistics decay alike over the silent near frames that follow, their ratio
        does not).
        """
        self.search_held = True
        if not self._placed:
            self._gcc[:] = 0.0
            self._sxx[:] = 0.0
            self._syy[:] = 0.0
            self._acor[:] = 0.0
            self._gcc_frames = 0
            self._candidate = None
            self._confidence = 0.0

    # -- input --------------------------------------------------------------------------------
    def _check(self, frame: np.ndarray) -> np.ndarray:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.int16 or frame.shape != (self.frame_samples,):
            frame = np.asarray(frame)
            raise ValueError(f"frames are 1-D int16 of {self.frame_samples} samples, "
                             f"got {frame.dtype} with shape {frame.shape}")
        return frame

    def far(self, frame: np.ndarray) -> None:
        """The agent frame just handed to RTP (silence included)."""
        self._check(frame)
        n = self.frame_samples
        self.frames_far += 1
        rows = self._xrows                                        # [x_{t-1}; x_t], [0; x_t]
        win = rows[0]
        win[:n] = win[n:]
        win[n:] = frame
        x = win[n:]
        power = float(np.dot(x, x)) / n
        head = self._head = (self._head - 1) % self._ring
        other = head + self._ring
        loud = power > 0.0
        if loud or self._far_loud:
            xbuf = self._xbuf
            if self._placed or self.echo_free:
                spec = np.fft.rfft(win, out=xbuf[head])
            else:                                                 # [0; x_t] feeds the far autocorrelation
                rows[1, n:] = x
                spec, self._zspec = np.fft.rfft(rows)
                xbuf[head] = spec
            xbuf[other] = spec
            if self._placed:  # only the filter's normalisation reads |X|^2 of every frame (see _place)
                p2 = np.multiply(spec.real, spec.real, out=self._xp2[head])
                p2 += spec.imag * spec.imag
                self._xp2[other] = p2
            self._xdirty[head] = True
        else:
            self._zspec = self._zero
            if self._xdirty[head]:                                # silence: zero a slot only once
                self._xbuf[head] = self._xbuf[other] = 0.0
                self._xp2[head] = self._xp2[other] = 0.0
                self._xdirty[head] = False
        self._xpow[head] = self._xpow[other] = power
        self._far_loud = loud
        if loud:
            self.search_held = False   # the agent talks again (see hold_search)
        if power > self._far_thresh:
            self._last_active = self._far_frames
        self._far_frames += 1

    def near(self, frame: np.ndarray) -> np.ndarray:
        """The caller frame just received; returns it with the echo removed (int16, same length).

        While no far frame is within the echo's reach the input object itself is returned. On
        an echo-free line the input object is returned too, and the delay search, which only
        watches for an echo that appears later, runs on every other frame.
        """
        self._check(frame)
        self.frames_near += 1
        slot = (self.frames_near - 1) % _HISTORY
        reach = self._p0 + _PARTITIONS if self._placed else self._p_search
        if self._far_frames - 1 - self._last_active > reach:
            self.frames_idle += 1
            self.far_active = self.double_talk = self.likely_echo_only = False
            self._history[slot] = False
            self._gain = 1.0
            return frame
        self.far_active = True
        n = self.frame_samples
        y = self._y
        y[:] = frame
        p_y = float(np.dot(y, y)) / n
        if self._placed:
            out, p_e, gain, dt = self._cancel(y, p_y)
        else:
            out, p_e = y, p_y
            if not self.search_held and (not self.echo_free or self.frames_near % _FREE_EVERY == 0):
                self._track(self._search_spectrum(y), self._head)
            if not self.echo_free:
                self._acquire_frames += 1
                self.echo_free = self._acquire_frames >= self._give_up
            if self.echo_free and not self._placed:
                gain, dt = 1.0, False                             # passed through below
            else:
                bound = self._erl_bound * float(self._xpow[self._head: self._head + reach + 1].max())
                gain = 1.0 - bound / p_y if p_y > 0.0 else 1.0
                dt = p_y > 2.0 * bound
        self._noise = min(max(p_e, 1.0), self._noise * 1.01)  # error floor: minimum, slow rise
        floor = max(self._near_floor, 2.0 * self._noise)
        dt = dt and min(p_e, p_y) > floor
        echo_only = not dt and p_y > self._near_floor
        if self.echo_free and not self._placed:
            # no echo on this line: the caller's soft sounds under the bound are not echo
            dt = echo_only = False
        self.double_talk, self.likely_echo_only = dt, echo_only
        self._history[slot] = echo_only
        self.frames_double_talk += dt
        self.frames_echo_only += echo_only
        if self.echo_free and not self._placed:
            self._gain = 1.0
            return frame
        gain = min(1.0, max(self._gmin, gain))
        result = out * gain
        if gain != self._gain:
            ramp = self._ramp_len
            result[:ramp] = out[:ramp] * (self._gain + (gain - self._gain) * self._ramp)
            self._gain = gain
        if echo_only and self._placed and p_y > floor:
            p_out = float(np.dot(result, result)) / n
            at = self._head + self._p0
            p_x = 0.5 * float(self._xpow[at] + self._xpow[at + 1])
            self._avg_y += 0.02 * (p_y - self._avg_y)
            self._avg_e += 0.02 * (p_e - self._avg_e)
            self._avg_out += 0.02 * (p_out - self._avg_out)
            self._avg_x += 0.02 * (p_x - self._avg_x)
        np.minimum(result, 32767.0, out=result)
        np.maximum(result, -32768.0, out=result)
        return result.astype(np.int16)

    # -- the filters ---------------------------------------------------------------------------
    def _cancel(self, y: np.ndarray, p_y: float) -> tuple[np.ndarray, float, float, bool]:
        """Both filters, background adaptation, residual suppression; (error, its power, gain, double talk)."""
        n = self.frame_samples
        s = self.settings
        at = self._head + self._p0
        xw = self._xbuf[at: at + _PARTITIONS]
        w = self._w
        spec_hat = w[:, 0] * xw[0]
        spec_hat += w[:, 1] * xw[1]
        y_hat = np.fft.irfft(spec_hat, self._fft)[:, n:]
        stack = self._stack                                       # [0; e_bg], [0; e_fg], [0; y_hat_fg]
        np.subtract(y, y_hat[::-1], out=stack[:2, n:])
        stack[2, n:] = y_hat[0]
        e_bg, e_fg = stack[0, n:], stack[1, n:]
        p_e_bg = float(np.dot(e_bg, e_bg)) / n
        p_e_fg = float(np.dot(e_fg, e_fg)) / n
        p_hat = float(np.dot(y_hat[0], y_hat[0])) / n
        specs = np.fft.rfft(stack)
        xpow = self._xpow
        xa = float(max(xpow[at], xpow[at + 1], xpow[at + 2]))
        self._placed_frames += 1
        slipped = 0
        loud = xa > self._far_thresh and p_y > self._worse_floor
        if loud and p_e_fg > _SLIP_GAIN * p_y:   # (a filter that explains the frame: no slip)
            slipped = self._slipped(y, p_y, p_e_fg)
        elif loud:
            self._slip = 0
        if not (math.isfinite(p_e_bg) and p_e_bg < 64.0 * (p_y + xa) + 1e6):
            self._restore_background()
        elif slipped:
            pass   # the background would learn the slipped echo where the shift will not put it
        elif xa > self._far_thresh and (self._leak > _SETTLED or self._placed_frames % 2):
            self._adapt(xw, specs[0], at, p_e_fg, p_e_bg)   # every other frame once settled
        # residual echo of the foreground per band; a band keeps what its residual cannot explain
        # of min(error, near) (the error alone would count misadjustment noise ahead of an echo).
        # Seven bands: plain Python floats beat numpy calls on arrays this small.
        gb, lo, hi = self._gbins, self._decide_lo, self._decide_hi
        spec_y = self._spec_y
        np.add(specs[1, :gb], specs[2, :gb], out=spec_y)          # E + Y_hat = Y
        sel = self._sel
        sel[:2] = specs[1:, lo:hi]
        sel[2] = spec_y[lo:hi]
        pw = sel.real ** 2
        pw += sel.imag ** 2
        b_e, b_hat, b_y = np.add.reduceat(pw, self._edges, axis=1).tolist()
        nu = self._nu
        total_hat = sum(b_hat)
        if total_hat > 0.0 and p_hat > self._near_floor:
            corr = float(np.dot(y, y_hat[0])) / n
            explained = corr > 0.0 and corr * corr * (1.0 + self._leak) > _RHO2 * p_y * p_hat
            if explained or self._placed_frames <= _STARTUP_FRAMES:
                live = 1e-3 * total_hat
                for i, (be, bh) in enumerate(zip(b_e, b_hat)):
                    if bh > live:
                        nu[i] += _NU_RATE * (math.log((be + 1.0) / (bh + live)) - nu[i])
        gamma = s.overestimate
        residual_sum = kept = total_e = total_min = 0.0
        for be, bh, by, v in zip(b_e, b_hat, b_y, nu):
            r = math.exp(v) * bh
            residual_sum += r
            m = be if be < by else by
            total_e += be
            total_min += m
            keep = 1.0 - gamma * r / (m + 1e-9)
            if keep > 0.0:
                kept += keep * keep * m
        if total_hat > 0.0:
            self._leak = residual_sum / total_hat
        gain = math.sqrt(kept / total_e) if total_e > 0.0 else 1.0
        dt = kept > s.double_talk_share * total_min
        if self._placed_frames <= _STARTUP_FRAMES:
            bound = max(self._erl_bound * xa, self._leak * p_hat)
            p_min = min(p_e_fg, p_y)
            gain = min(gain, 1.0 - bound / p_min if p_min > 0.0 else 1.0)
            dt = dt and p_min > 2.0 * bound
        if slipped:
            gain, dt = 0.0, False   # what is left is the echo itself (see _slipped)
        elif p_e_fg > _WORSE_RATIO * p_y and p_y > self._worse_floor and xa > self._far_thresh:
            # the estimate adds energy instead of removing it: over a converged filter the
            # caller can only make the error smaller than the near signal, so this is an echo
            # the filter gets wrong (it moved, or it is misadjustment ahead of an onset)
            gain, dt = 0.0, False
            self._worse += 1
            if self._worse == _WORSE_FRAMES and self._placed_frames > _STARTUP_FRAMES:
                self._distrust()
        else:
            self._worse = 0
        if self._placed_frames % 2 == 0 and not self.search_held:   # tracking: every other frame
            self._track(spec_y if self._taper is None else self._search_spectrum(y), self._head)
        if self.frames_near % 10 == 0:
            self._peak_tap()
        return stack[1, n:], p_e_fg, gain, dt

    def _adapt(self, xw: np.ndarray, spec_e: np.ndarray, at: int, p_e_fg: float, p_e_bg: float) -> None:
        """One constrained NLMS step of the background; foreground/background hand-over."""
        n = self.frame_samples
        norm = self._norm
        norm *= _NORM_A
        norm += self._xp2[at]
        norm += self._xp2[at + 1]
        scale = norm + (1e-4 / len(norm) * float(norm.sum()) + 1e3 * self._fft)
        np.divide(self._mu_bins, scale, out=scale)
        grad = np.conj(xw)
        grad *= spec_e * scale
        grad += self._w[1]
        self._adapted += 1
        projected = self._adapted % _PROJECT == 0 or self._adapted <= 8
        if projected:
            taps = self._taps
            taps[:] = np.fft.irfft(grad, self._fft)
            taps[:, n:] = 0.0
            self._w[1] = np.fft.rfft(taps)
        else:
            self._w[1] = grad
        self._s_fg += 0.4 * (p_e_fg - self._s_fg)
        self._s_bg += 0.4 * (p_e_bg - self._s_bg)
        if self._adapted <= 8 or self._s_bg < 0.5 * self._s_fg:
            self._better += 1
            if projected and (self._better >= 2 or self._adapted <= 8):
                self._w[0] = self._w[1]
                self._s_fg = self._s_bg
                self.filter_copies += 1
        else:
            self._better = 0
            if self._s_bg > 8.0 * self._s_fg:
                self._restore_background()

    def _slipped(self, y: np.ndarray, p_y: float, p_e_fg: float) -> int:
        """Whether the foreground shifted by one frame explains this near frame far better: +1 / -1 / 0.

        A jitter buffer ahead of the canceller that conceals a late packet (inserts a frame) or
        discards one shifts the whole near stream by one frame against the far reference: the
        echo path is the same, one frame later or earlier. The foreground then predicts the
        wrong frame and its error is the echo plus its estimate, and the caller's own voice can
        never make a shifted filter explain the frame better than the right one, so a shift
        leaving a quarter of the error and of the near power (6 dB less) is the echo itself:
        the frame is suppressed, and after two such frames in a row both filters move by one
        partition (see :meth:`_shift`). Tried on the far ring already transformed, and only on
        frames the foreground explains less than 6 dB of (double talk, a young filter, a slip):
        ~25 us on those (hot; 0.4 of the frames of a call the caller talks over from 2 s on,
        none on a converged echo alone, bench/echo.py's cost unchanged).
        Without it the echo leaked 0-1.5 dB down on 4-17 frames of the next 2 s while the
        background re-learnt it or the search re-placed it (8 and 16 kHz, 20-140 ms), flagged
        double talk: on the wire, 2 of 14 calls where the jitter buffer concealed one frame
        paused the agent on its own echo, at gain 0.7-0.95.
        """
        n = self.frame_samples
        w0, xb, head = self._w[0], self._xbuf, self._head
        cands = self._shifts()
        spec = np.zeros((2, w0.shape[1]), np.complex128)
        for k, (_, p, src) in enumerate(cands):
            for j, part in enumerate(src):
                if part is not None:
                    spec[k] += w0[part] * xb[head + p + j]
        est = np.fft.irfft(spec, self._fft)[:, n:]
        err = y - est
        p_c = np.einsum("ij,ij->i", err, err) / n
        best = int(np.argmin(p_c))
        if not p_c[best] < _SLIP_GAIN * min(p_e_fg, p_y):
            self._slip = 0
            return 0
        d = cands[best][0]
        self._slip = self._slip + d if self._slip * d >= 0 else d
        if abs(self._slip) >= _SLIP_FRAMES:
            self._shift(*cands[best], float(p_c[best]))
        return d

    def _shifts(self) -> list[tuple[int, int, tuple[int | None, int | None]]]:
        """The one-frame shifts of the filters: (direction, first partition, source partition of each).

        An echo one frame later moves the filter's span one partition on, one frame earlier one
        back; at either end of the ring the coefficients move within the span instead (what
        falls out is lost).
        """
        p0 = self._p0
        later = (1, p0 + 1, (0, 1)) if p0 + 1 < self._p_search else (1, p0, (None, 0))
        earlier = (-1, p0 - 1, (0, 1)) if p0 >= 1 else (-1, p0, (1, None))
        return [later, earlier]

    def _shift(self, d: int, p: int, src: tuple[int | None, int | None], p_e: float) -> None:
        """Move both filters (and the search's statistics) one frame: the near stream slipped.

        The residual model is kept: the shifted filter is the one it was learnt on. Forgetting
        it (full suppression until re-learnt) made a caller talking over the echo 0.3 s after
        a slip, or while it happened, start a turn late in 35 of 108 cases instead of 19.
        """
        n = self.frame_samples
        w = self._w
        moved = np.zeros_like(w[0])
        for j, part in enumerate(src):
            if part is not None:
                moved[j] = w[0, part]
        w[0] = moved
        w[1] = moved                       # the background learnt the slipped echo in the old span
        self._s_fg = self._s_bg = p_e
        self._better = self._worse = self._slip = self._away = 0
        self._p0 = p
        if self._delay is not None:
            self._delay = max(0, self._delay + d * n)
        gcc = self._gcc                    # row p correlates X_{t-p}: the echo's peak moves one row
        if d > 0:
            gcc[1:] = gcc[:-1].copy()
            gcc[0] = 0.0
        else:
            gcc[:-1] = gcc[1:].copy()
            gcc[-1] = 0.0
        if self._candidate is not None:
            self._candidate = max(0, self._candidate + d * n)
        self.echo_slips += 1
        self._peak_tap()

    def _distrust(self) -> None:
        """The echo moved: forget the learnt residual (full suppression until it is re-learnt)."""
        self._nu = [0.0] * len(self._nu)
        self._leak = 1.0
        self.echo_moves += 1

    def _restore_background(self) -> None:
        self._w[1] = self._w[0]
        self._s_bg = self._s_fg
        self._better = 0
        self.filter_resets += 1

    def _peak_tap(self) -> None:
        if self._adapted < 15:
            return
        taps = np.fft.irfft(self._w[0], self._fft)[:, : self.frame_samples].ravel()
        self._delay = self._p0 * self.frame_samples + int(np.argmax(np.abs(taps)))

    # -- the delay search ----------------------------------------------------------------------
    def _track(self, spec_y: np.ndarray, head: int) -> None:
        """Accumulate the near/far cross-spectra; every few frames, estimate the delay.

        On an echo-free line (called on every ``_FREE_EVERY``-th frame only) each call forgets
        as much as that many acquiring frames do, so the memory in seconds is the same; the
        delay is estimated every 80 ms instead of 60 ms, or on every call while the last peak
        stood out at all. Measured on 70 echoes appearing 4-17 s into an echo-free call (6-20
        dB, 20-180 ms): placed after median 200 ms, p90 364 ms, max 560 ms (every frame: 180 /
        380 / 500 ms; every fourth frame: 340 / 568 / 1360 ms).
        """
        sampled = self.echo_free and not self._placed
        forget = _FREE_FORGET if sampled else _GCC_FORGET[int(self._placed)]
        gb = self._gbins
        xs = self._xbuf[head: head + self._p_search, :gb]
        spec_y = spec_y[:gb]
        keep = 1.0 - forget
        weighted = np.conj(spec_y)
        weighted *= forget
        tmp = self._gtmp
        np.multiply(xs, weighted, out=tmp)
        self._gcc *= keep
        self._gcc += tmp
        self._sxx *= keep
        if self._placed:
            self._sxx += forget * self._xp2[head, :gb]
        else:  # far() keeps |X|^2 only while placed
            x0 = xs[0]
            p2 = x0.real * x0.real
            p2 += x0.imag * x0.imag
            p2 *= forget
            self._sxx += p2
            if not sampled:  # only the first placement's least squares needs it (see _place)
                self._acor *= keep
                self._acor += x0 * np.conj(self._zspec[:gb]) * forget
        power = spec_y.real ** 2
        power += spec_y.imag ** 2
        power *= forget
        self._syy *= keep
        self._syy += power
        self._gcc_frames += 1
        self.frames_searched += 1
        if sampled:
            due = self._gcc_frames % _FREE_ESTIMATE == 0 or self._confidence >= _FREE_HINT
        else:
            due = self._gcc_frames % 3 == 0
        if due and self._gcc_frames >= 8:
            self._estimate()

    def _search_spectrum(self, y: np.ndarray) -> np.ndarray:
        """Spectrum of ``[0; y]`` for the delay search, ``y`` tapered at both ends when a taper is set."""
        row = self._search_row
        if self._taper is None:
            row[self.frame_samples:] = y
        else:
            np.multiply(y, self._taper, out=row[self.frame_samples:])
        return np.fft.rfft(row)

    def _estimate(self) -> None:
        n = self.frame_samples
        weight = self._band / np.sqrt(self._sxx * self._syy + 1e-3)
        # SCOT-weighted correlation at every step-th lag (the band ends below fs / (2 step))
        step = self._step
        corr = np.fft.irfft(self._gcc * weight, self._search_fft)[:, self._search_index]
        if self._taper is None:
            # The edges of a rectangular near frame and of the far window's wrap, once whitened
            # (speech is low-pass, so the weighting lifts their clicks), correlate at the lags
            # where they line up: the first of each partition (every whole number of frames), a
            # spurious peak that outgrew real echoes. Zeroed, it blinds the search to an echo
            # exactly there: placed after up to 420 ms instead of 300, and a move onto such a
            # lag followed after 1.6-5.5 s instead of 0.6-0.7 s (at 8 kHz, where every
            # whole-packet delay lands there, never). A taper (search_taper_ms) removes the
            # clicks instead: on 40 echo-free lines searched for 14 s, 1-2 would have been
            # placed, against 1 with the zeroing (both rates).
            corr[:, 0] = 0.0
        mag = np.abs(corr.ravel()[: self._lags // step + 1])
        peak = int(np.argmax(mag))
        lag = step * peak
        rms = float(np.sqrt(np.dot(mag, mag) / len(mag)))
        conf = float(mag[peak]) / rms if rms > 0.0 else 0.0
        self._confidence = conf
        previous, self._candidate = self._candidate, lag
        if conf < 8.0 or previous is None or abs(previous - lag) > n // 20:
            return
        if not self._placed:
            self._place(lag)
            return
        here = self._delay
        if here is None or abs(lag - here) <= self._move or self._placed_frames <= _STARTUP_FRAMES:
            self._away = 0  # (a young filter's largest tap is no reference yet)
            return
        around = mag[max(0, (here - self._move) // step): (here + self._move) // step + 1]
        if len(around) and mag[peak] < 2.0 * float(around.max()):
            self._away = 0  # a rival peak, but the echo is still where it was
            return
        # the echo moved (a jitter buffer re-sized, a transfer): distrust the residual model at
        # once (full suppression until it is re-learnt); re-place if the filter cannot reach
        self._away += 1
        if self._away == 1:
            self._distrust()
        inside = self._p0 * n + n // 10 <= lag <= (self._p0 + _PARTITIONS) * n - n // 2
        if not inside and self._away >= 2:
            self._place(lag)

    def _place(self, lag: int) -> None:
        """Put the filter's span around ``lag`` and start both filters from zero."""
        n = self.frame_samples
        self._p0 = max(0, min((lag - n // 6) // n, self._p_search - 1))
        self._delay = lag
        if not self._placed:  # far() kept no |X|^2 until now: the filter's normalisation needs it
            xb = self._xbuf
            np.multiply(xb.real, xb.real, out=self._xp2)
            self._xp2 += xb.imag * xb.imag
        self._placed = True
        self._away = 0
        late, self.echo_free = self.echo_free, False
        self.delay_changes += 1
        self._w[:] = 0.0
        self._norm[:] = 0.0
        self._nu = [0.0] * len(self._nu)
        self._leak = 1.0
        self._adapted = self._placed_frames = self._better = 0
        self._s_fg = self._s_bg = 0.0
        # Later the tracking statistics are too short for a good fit. An echo that appeared on
        # an echo-free line was searched on every other frame only, and a fit from those
        # statistics started filters that went astray (70 late echoes: one ended on a wrong
        # tap, 4 spurious moves; on every fourth frame 24 on a wrong tap): it is learnt from
        # zero, like a moved echo.
        if self.delay_changes == 1 and not late:
            self._least_squares(lag)

    def _least_squares(self, lag: int) -> None:
        """Start both filters from the least-squares fit of the delay search's statistics.

        The GCC accumulators hold the near/far cross-correlation at every lag, and the far
        autocorrelation is accumulated with the same weighting; the Toeplitz normal equations
        for up to 0.8 N taps from 3 ms before the peak give a filter worth several dB at once,
        where NLMS from zero needs a second or more of speech for that (measured: ERLE after
        2 s of far speech 11-15 dB instead of 7-10). One solve per placement, ~1 ms.
        """
        n = self.frame_samples
        base = self._p0 * n
        start = max(base, lag - n // 6)
        offset = start - base
        taps = min(int(0.8 * n), 2 * n - offset, self._p_search * n - start)
        if taps < 8:
            return
        corr = np.fft.irfft(self._gcc, self._fft)[:, self._lag_index].ravel()[start: start + taps]
        if self._taper is not None:   # the near frame was tapered: undo its mean gain on the correlation
            corr /= self._taper.mean()
        auto = np.fft.irfft(self._acor, self._fft)[self._lag_index[:taps]]
        if not auto[0] > 0.0:
            return
        idx = np.arange(taps)
        matrix = auto[np.abs(idx[:, None] - idx[None, :])]
        matrix[idx, idx] += 0.01 * auto[0]
        try:
            h = np.linalg.solve(matrix, corr)
        except np.linalg.LinAlgError:
            return
        if not np.all(np.isfinite(h)):
            return
        flat = np.zeros(_PARTITIONS * n)
        flat[offset: offset + taps] = h
        full = np.zeros((_PARTITIONS, self._fft))
        full[:, :n] = flat.reshape(_PARTITIONS, n)
        self._w[0] = self._w[1] = np.fft.rfft(full)

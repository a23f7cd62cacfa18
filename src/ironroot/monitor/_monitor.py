"""Following transparency logs: consistency, entries, watched statements, forks.

:meth:`Monitor.check` takes one log (its C2SP read API behind a :class:`LogFetcher`) and, in
this order:

1. fetches ``checkpoint`` and opens it with the log's keys
   (:func:`~ironroot.log.fetch_checkpoint`; given, or pinned the first time
   they were read from the log's ``/.well-known/transparency-configuration``, and then the
   checkpoint must name the origin pinned with them: :class:`UnknownIssuer` otherwise, as
   when a URL serves another log signed by the same key; a note that is no checkpoint at
   all — not UTF-8, a size beyond 2^63 - 1, larger than any log resource — is
   :class:`VerificationFailed`, the log's failure, not the monitor user's); with a
   :class:`~ironroot.witness.WitnessPolicy`, also requires its quorum of cosignatures; from
   then on the note is the one with only those keys' lines (anyone can add others). A
   checkpoint the log signed but short of the quorum is only compared with the verified one
   (2, the same size or larger): a fork it proves is kept and reported like any other (the
   log's signatures are the proof), else :class:`InsufficientCosignatures`;
2. compares it with the last checkpoint verified for that origin (from any URL: two URLs
   that serve one origin are checked against one state, so a split view between mirrors is a
   fork like any other), if a key that signed that one signed this one too
   (:class:`UnknownIssuer` otherwise: two logs naming one origin are no fork of either):

   * same size, same root: nothing new; same size, another root: a **fork**;
   * smaller: :class:`InconsistentCheckpoint` — the log went back, or the URL is a mirror
     behind it, or it serves a split view. Which one needs the verified tree's nodes, which
     the monitor does not keep, so the signed checkpoint is kept (:class:`Behind`) and
     checked at the next round that reads the verified tree's tiles (from any URL of that
     origin, the same size included; a larger tree once its entries verified too): the
     explicit consistency proof from its size to that
     tree either gives its root (a ``behind`` event: a mirror that lags, dropped) or another
     one (a **fork**, the two signed checkpoints and the proof kept, as below);
   * larger: the tree is read from the tiles, whose root must be the checkpoint's
     (:class:`VerificationFailed` if not), and the explicit consistency proof from the old
     size is computed from them; it must lead to the checkpoint's root (else the tiles
     disagree with each other: :class:`VerificationFailed`, not a fork, since a mirror
     without the log's key can serve such tiles); if it then leads to another root at the
     old size, a **fork**;

3. fetches the new entries from the entry bundles, one bundle at a time (what it holds is
   bounded by a bundle, however far behind it is), appends their leaf hashes to the stored
   compact range, and requires the checkpoint's root (:class:`VerificationFailed` if not);
   a checkpoint more than ``max_new_entries`` beyond the verified size is
   :class:`LimitExceeded` once its tree was checked for a fork, before any entry is read:
   a log that signs a size of 2^40 or 2^62 would otherwise hold the round (and every log
   after it in the round) for as long as it serves bundles, and store nothing;
4. parses each entry as a SCITT Signed Statement and reports those whose ``iss`` or ``sub``
   is watched (``statement`` events); a subject or issuer watched now that the entries
   verified before were not read for (the watch grew, or the state predates the record of
   what it was read for) makes it read those entries again from the verified tree (they must
   give the verified root: :class:`VerificationFailed` if not) and report them too (detail
   ``verified before it was watched``), once: what each state was read for is stored with it.
   Each new entry (not one read again) also goes through the per-entry checks
   (:class:`~ironroot.monitor.EntryCheck`): the one-time key uses they read are kept with the
   new state (step 5), and one whose key and leaf an entry of any followed log used for
   another signature is a ``<kind>-reused`` event naming both entries; an entry whose uses a
   check cannot read is ``<kind>-malformed``.
   That read has the same bound as the new entries: a verified tree larger than
   ``max_new_entries`` is not read again (:class:`LimitExceeded`, code ``read-again-limit``,
   before any entry is read; a smaller checkpoint kept is still settled first, and a fork is
   reported, not the limit), and is read once the limit is raised;
5. stores the new state (size, root, note, compact range) in one write, if the stored state
   is still the one it checked against (:class:`~ironroot.errors.Conflict` otherwise: another
   monitor sharing the store got there first, and the state never goes back).

A fork stores a :class:`~ironroot.witness.ForkProof` (both signed notes and the proof) and
:meth:`raise_for` raises :class:`ForkDetected`; the state is not advanced, so the next
round finds it again until someone looks. Events are returned as :class:`MonitorEvent`
values, one JSON object each (``to_json``), or one text line each (``line``).

Pure but for the fetcher, the store and the clock, which are passed in.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ironroot._text import shown
from ironroot.cose import SignedStatement
from ironroot.cose._sign1 import unchecked_protected_header
from ironroot.errors import (
    BadSignature,
    ConfigError,
    ForkDetected,
    InconsistentCheckpoint,
    InsufficientCosignatures,
    IronrootError,
    LimitExceeded,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.log import (
    TILE_WIDTH,
    Checkpoint,
    LogFetcher,
    Note,
    NoteSignature,
    NoteVerifier,
    TileTree,
    fetch_checkpoint,
    fetch_log_identity,
    open_note,
)
from ironroot.merkle import EMPTY_ROOT, CompactRange, leaf_hash
from ironroot.monitor._checks import MALFORMED, REUSED, EntryCheck, KeyReuse, OneTimeKeyUse
from ironroot.monitor._store import MAX_BEHIND, Behind, LogState, MonitorStore
from ironroot.witness import ForkProof, WitnessPolicy, explicit_consistency_proof, fork_roots

__all__ = ["DEFAULT_MAX_NEW_ENTRIES", "Monitor", "MonitorEvent", "Watch"]

_log = logging.getLogger("ironroot.monitor")


def _shown_url(url: str) -> str:
    """``url`` as the monitor names it in messages, log records and events
    (:func:`ironroot._httpclient.shown_url`: no ``user:password@``, a fixed placeholder for
    one that does not parse). Imported here: ``ironroot monitor --help`` loads no HTTP
    client."""
    from ironroot._httpclient import shown_url as without_userinfo

    return without_userinfo(url)


DEFAULT_MAX_NEW_ENTRIES: Final = 1 << 24
"""The most entries one check reads from a log (65,536 full entry bundles), in each of its
two reads: the new entries, and the verified ones read again for a newly watched subject or
issuer. A larger step, or a larger verified tree to read again, is refused with
:class:`LimitExceeded`; an operator following a log that grows faster between rounds, a
first look at a larger log, or a new watch on one, raises it (``--max-new-entries``)."""


_DIGEST_SUBJECT: Final = re.compile(r"(?i:sha256|sha384|sha512):[0-9a-fA-F]{64,128}")


@dataclass(frozen=True, slots=True)
class Watch:
    """The statements to report: any whose ``iss`` is in ``issuers`` or ``sub`` in
    ``subjects`` (exact matches; an empty watch reports nothing)."""

    subjects: frozenset[str] = frozenset()
    issuers: frozenset[str] = frozenset()

    @property
    def items(self) -> frozenset[tuple[str, str]]:
        """``("sub", subject)`` and ``("iss", issuer)`` for each (what the store records)."""
        return frozenset({("sub", s) for s in self.subjects} | {("iss", i) for i in self.issuers})

    @classmethod
    def of(cls, items: frozenset[tuple[str, str]]) -> Watch:
        return cls(
            frozenset(v for w, v in items if w == "sub"),
            frozenset(v for w, v in items if w == "iss"),
        )

    @staticmethod
    def fold_subject(sub: str | None) -> str | None:
        """``sub`` as a subject is compared: a firmware digest (``sha256:``, ``sha384:``,
        ``sha512:`` and hex, as a SAFE review names what it reviews, in any case) in lowercase,
        anything else as it is."""
        if sub is not None and _DIGEST_SUBJECT.fullmatch(sub):
            return sub.lower()
        return sub

    def matches(self, iss: str | None, sub: str | None) -> list[str]:
        """Why a statement is watched: ``["sub", "iss"]``, either or neither (a digest subject
        in any case: :meth:`fold_subject`; watch digests in lowercase)."""
        watched = sub in self.subjects or self.fold_subject(sub) in self.subjects
        hits = (("sub", watched), ("iss", iss in self.issuers))
        return [what for what, hit in hits if hit]


@dataclass(frozen=True, slots=True)
class MonitorEvent:
    """One thing the monitor saw: ``checkpoint`` (a newly verified tree), ``statement`` (a
    watched statement), ``fork`` (two checkpoints of one origin that are not consistent),
    ``behind`` (a smaller checkpoint a URL served earlier, now proven consistent with the
    verified tree: a mirror that lags); and of each :class:`EntryCheck` of kind ``k``,
    ``k-reused`` (an entry that uses a one-time key's leaf an earlier entry used for another
    signature: ``extra`` names the key, the leaf and both entries) and ``k-malformed`` (an
    entry that names one-time key uses the check cannot read)."""

    kind: str
    origin: str
    url: str
    size: int
    detail: str = ""
    index: int | None = None
    entry_id: str | None = None
    iss: str | None = None
    sub: str | None = None
    watched: tuple[str, ...] = ()
    fork_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event": self.kind,
            "origin": self.origin,
            "url": self.url,
            "size": self.size,
        }
        for name in ("index", "entry_id", "iss", "sub", "fork_id"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.watched:
            out["watched"] = list(self.watched)
        if self.detail:
            out["detail"] = self.detail
        out.update(self.extra)
        return out

    @property
    def alarm(self) -> bool:
        """Whether the event is one to act on at once: a fork, a one-time key used twice, or
        one-time key uses that cannot be read (``ironroot monitor`` exits 1)."""
        return self.kind == "fork" or self.kind.endswith((REUSED, MALFORMED))

    def line(self) -> str:
        if self.kind == "statement":
            return (
                f"statement {self.origin} #{self.index} iss={self.iss} sub={self.sub} "
                f"(watched {', '.join(self.watched)}) id={self.entry_id}"
                + (f": {self.detail}" if self.detail else "")
            )
        if self.kind == "fork":
            return f"FORK {self.origin} at {self.url}: {self.detail} (proof #{self.fork_id})"
        if self.alarm:
            return f"{self.kind.upper()} {self.origin} #{self.index}: {self.detail}"
        return f"{self.kind} {self.origin} size {self.size}: {self.detail}"


_CWT_CLAIMS: Final = 15
_ISS: Final = 1
_SUB: Final = 2


def _unchecked_claims(entry: bytes) -> tuple[str | None, str | None] | None:
    """``(iss, sub)`` of the CWT claims (label 15) in the protected header of ``entry`` read as
    a COSE_Sign1 by a plain CBOR decode, nothing else checked; ``None`` when it is not one or
    names neither as text. For an entry the strict parse refuses (:meth:`Monitor._watched`)."""
    header = unchecked_protected_header(entry)
    claims = header.get(_CWT_CLAIMS) if header is not None else None
    if not isinstance(claims, Mapping):
        return None
    iss, sub = claims.get(_ISS), claims.get(_SUB)
    iss = iss if isinstance(iss, str) else None
    sub = sub if isinstance(sub, str) else None
    return None if iss is None and sub is None else (iss, sub)


@dataclass(slots=True)
class _Uses:
    """The one-time key uses read from the new entries of a round: ``(kind, index, use)`` in
    entry order, and the id of each entry that has some."""

    found: list[tuple[str, int, OneTimeKeyUse]] = field(default_factory=list)
    entries: dict[int, str] = field(default_factory=dict)


def _wall_clock() -> int:
    return int(time.time())


def _signers(note: bytes, verifiers: Sequence[NoteVerifier]) -> set[tuple[str, bytes]]:
    """The (name, key id) of each of ``verifiers`` whose signature on ``note`` verifies."""
    found = set()
    for verifier in verifiers:
        try:
            open_note(note, (verifier,))
        except (BadSignature, UnknownIssuer):
            continue
        found.add((verifier.name, verifier.key_id))
    return found


def _log_limit(detail: str, *, code: str | None = None) -> LimitExceeded:
    """A limit the log's size met (what it served, not what the caller typed): exit 1 like
    the log's other failures, not 2 (usage), as docs/witness.md says."""
    error = LimitExceeded(detail, code=code)
    error.exit_code = 1  # type: ignore[misc]  # instance-level refinement of the class's
    return error


class Monitor:
    """Follows logs, keeping what it verified in ``store``."""

    def __init__(
        self,
        store: MonitorStore,
        *,
        watch: Watch | None = None,
        witnesses: WitnessPolicy | None = None,
        name: str = "ironroot-monitor",
        clock: Callable[[], int] = _wall_clock,
        max_new_entries: int = DEFAULT_MAX_NEW_ENTRIES,
        checks: Sequence[EntryCheck] = (),
    ) -> None:
        """``checks``: what to run on each new entry (:class:`EntryCheck`; one-time key uses,
        kept in ``store`` and compared across every log it follows)."""
        if isinstance(max_new_entries, bool) or not isinstance(max_new_entries, int):
            raise ConfigError("the most new entries a check reads is an integer")
        if max_new_entries < 1:
            raise ConfigError("the most new entries a check reads is at least 1")
        self.max_new_entries = max_new_entries
        self.store = store
        self.watch = watch or Watch()
        self.witnesses = witnesses
        self.name = name
        self._clock = clock
        kinds = [check.kind for check in checks]
        if len(set(kinds)) != len(kinds) or not all(kinds):
            raise ConfigError("each check on entries has a kind of its own")
        self.checks = tuple(checks)

    def _identity(
        self, url: str, fetcher: LogFetcher, keys: Sequence[NoteVerifier]
    ) -> tuple[tuple[NoteVerifier, ...], str | None]:
        """The keys to open ``url``'s checkpoints with, and the origin they must name (the
        pinned one; ``None`` when the keys are given, which name no origin)."""
        if keys:
            return tuple(keys), None
        pinned = self.store.pin(url)  # keyed by the URL as given: a password and all
        identity = fetch_log_identity(fetcher)
        vkeys = tuple(v.vkey for v in identity.verifiers)
        if pinned is None:
            self.store.set_pin(url, identity.origin, vkeys)
            _log.warning(  # the keys' names are the log's text: shown
                "trusting the keys %s served by %s on first use (give --key to pin them)",
                shown(", ".join(vkeys)),
                _shown_url(url),
            )
            return identity.verifiers, identity.origin
        if pinned != (identity.origin, vkeys):
            raise ConfigError(
                f"{_shown_url(url)} now names other checkpoint keys or another origin than when "
                "first seen: check them, and give the right ones with --key"
            )
        return identity.verifiers, identity.origin

    def _known_lines(self, note: bytes, verifiers: Sequence[NoteVerifier]) -> bytes:
        """``note`` (opened already) with only the lines of the log's keys, then of the
        witnesses' (each key's first, in the order of the keys): what is kept of it. Lines of
        other keys are anyone's to add (signed-note), so a note kept with them would be a
        new note, and a fork a new fork, with every line a URL adds."""
        parsed = Note.parse(note)
        keys: list[tuple[str, bytes]] = [(v.name, v.key_id) for v in verifiers]
        if self.witnesses is not None:
            keys += [(w.name, w.key_id) for w in self.witnesses.witnesses]
        first: dict[tuple[str, bytes], NoteSignature] = {}
        for line in parsed.signatures:
            first.setdefault((line.name, line.key_id), line)
        kept = tuple(dict.fromkeys(first[k] for k in keys if k in first))
        return Note(body=parsed.body, signatures=kept).encode()

    def _served(
        self, fetcher: LogFetcher, verifiers: Sequence[NoteVerifier], origin: str | None
    ) -> tuple[bytes, Checkpoint, InsufficientCosignatures | None]:
        """The served checkpoint, opened with the log's keys by
        :func:`~ironroot.log.fetch_checkpoint` (one that is no checkpoint, or larger than any
        log resource, is the log's failure, :class:`VerificationFailed`, not bad input of the
        monitor's user), then, with a witness policy, its quorum of cosignatures checked: a
        note short of it is returned with that refusal, which :meth:`check` raises once it
        has looked for a fork (the log's signatures prove one on their own)."""
        note, checkpoint = fetch_checkpoint(fetcher, verifiers, origin=origin)
        if self.witnesses is not None:
            try:
                self.witnesses.check(note, verifiers, origin=origin, now=self._clock())
            except InsufficientCosignatures as exc:
                return note, checkpoint, exc
        return note, checkpoint, None

    def _unwitnessed(
        self,
        url: str,
        fetcher: LogFetcher,
        state: LogState,
        note: bytes,
        checkpoint: Checkpoint,
        short: InsufficientCosignatures,
    ) -> list[MonitorEvent]:
        """A checkpoint the log signed but short of the witness quorum: the fork it proves
        with the verified one (the same size and another root, or a tree that does not extend
        it), else ``short`` raised. Nothing else is done with it: no state, no entries."""
        if state.note and checkpoint.size == state.size:
            if not hmac.compare_digest(checkpoint.root, state.root):
                return [self._fork(url, state, note, checkpoint, (), "another root at one size")]
        elif state.note and checkpoint.size > state.size:
            tree = self._tree(url, fetcher, checkpoint)
            old_root, proof = self._root_at(url, tree, checkpoint, state.size)
            if not hmac.compare_digest(old_root, state.root):
                why = f"the tree at size {checkpoint.size} does not extend size {state.size}"
                return [self._fork(url, state, note, checkpoint, tuple(proof), why)]
        raise short

    def check(
        self, url: str, fetcher: LogFetcher, keys: Sequence[NoteVerifier] = ()
    ) -> list[MonitorEvent]:
        """Check the log at ``url`` once (see the module docs); returns what happened.
        ``url`` keys the keys pinned on first use; messages, log records and events name it
        without its user information (:func:`ironroot._httpclient.shown_url`)."""
        verifiers, origin = self._identity(url, fetcher, keys)
        url = _shown_url(url)  # from here on, what is named (and kept with a smaller checkpoint)
        note, checkpoint, short = self._served(fetcher, verifiers, origin)
        note = self._known_lines(note, verifiers)
        state = self.store.state(checkpoint.origin)
        if state is None:
            state = LogState(checkpoint.origin, 0, EMPTY_ROOT, b"", (), 0)
        elif state.note and not _signers(state.note, verifiers) & _signers(note, verifiers):
            # Two notes of one origin that no one key signed are no fork of a log: another
            # log (a URL whose keys were trusted on first use) names this origin.
            raise UnknownIssuer(
                f"{url} serves {checkpoint.origin} signed by none of the keys that signed the "
                f"checkpoint verified for it at size {state.size}: another log names this "
                "origin, or its keys changed (give the keys with --key)"
            )
        if short is not None:
            return self._unwitnessed(url, fetcher, state, note, checkpoint, short)
        if checkpoint.size < state.size:
            self._behind(url, note, checkpoint, state)
        if checkpoint.size == state.size:
            if not hmac.compare_digest(checkpoint.root, state.root):
                if not state.note:  # size 0, never verified: the empty tree has one root
                    raise VerificationFailed(f"{url} serves an empty tree with another root")
                return [self._fork(url, state, note, checkpoint, (), "another root at one size")]
            behind = self.store.behind(checkpoint.origin)
            unread = self._unread(state)
            if not behind and not unread:
                return []
            tree = self._tree(url, fetcher, checkpoint)
            if unread and state.size > self.max_new_entries:
                settled = self._settle(url, tree, note, checkpoint, behind)
                if settled:  # a fork, or a mirror proven behind: reported; the limit next
                    return settled
                raise self._too_many_again(url, state, unread)
            again = self._read_again(url, tree, state, checkpoint, unread)
            settled = self._settle(url, tree, note, checkpoint, behind)
            if unread:  # last: a round that fails before reads them again at the next
                self.store.add_watched(state, unread)
            return [*again, *settled]
        tree = self._tree(url, fetcher, checkpoint)
        if state.size:
            old_root, proof = self._root_at(url, tree, checkpoint, state.size)
            if not hmac.compare_digest(old_root, state.root):
                why = f"the tree at size {checkpoint.size} does not extend size {state.size}"
                return [self._fork(url, state, note, checkpoint, tuple(proof), why)]
        if checkpoint.size - state.size > self.max_new_entries:
            raise _log_limit(
                f"{url} serves {checkpoint.origin} at size {checkpoint.size}, "
                f"{checkpoint.size - state.size} entries beyond the size {state.size} verified: "
                f"more than the {self.max_new_entries} one check reads (--max-new-entries)"
            )
        unread = self._unread(state)
        if unread and state.size > self.max_new_entries:
            raise self._too_many_again(url, state, unread)
        again = self._read_again(url, tree, state, checkpoint, unread)
        # The new tree first: a round that fails there (entries that do not give the root)
        # settles nothing, so a fork of a smaller checkpoint is not found in a round that
        # reports only that failure, and then dropped; the next round that verifies does it.
        advanced = self._advance(url, tree, state, note, checkpoint)
        settled = self._settle(url, tree, note, checkpoint, self.store.behind(checkpoint.origin))
        return [*again, *settled, *advanced]

    def _too_many_again(
        self, url: str, state: LogState, unread: frozenset[tuple[str, str]]
    ) -> LimitExceeded:
        """The refusal to read the verified tree again (module docs, 4)."""
        watched = ", ".join(sorted(f"{w} {v}" for w, v in unread))
        return _log_limit(
            f"{url}: newly watched {watched}: the {state.size} entries of {state.origin} "
            f"verified before are more than the {self.max_new_entries} one check reads again "
            "(--max-new-entries: raise it for the round that reads them)",
            code="read-again-limit",
        )

    def _unread(self, state: LogState) -> frozenset[tuple[str, str]]:
        """What is watched now that the entries of the verified tree were not read for (a
        subject or issuer watched since; everything watched, for a state kept before this
        was recorded)."""
        if not state.size:
            return frozenset()
        return self.watch.items - self.store.watched(state.origin)

    def _read_again(
        self,
        url: str,
        tree: TileTree,
        state: LogState,
        checkpoint: Checkpoint,
        unread: frozenset[tuple[str, str]],
    ) -> list[MonitorEvent]:
        """The statements among the verified tree's entries (``state``; ``tree`` extends it)
        that ``unread`` watches: read again from ``tree``, whose entries must give the
        verified root (:class:`VerificationFailed` if not). The caller records them as read
        once the round succeeded (a round that fails reads them again at the next: reported
        twice rather than never)."""
        if not unread:
            return []
        watch = Watch.of(unread)
        compact = CompactRange()
        events = self._read(url, tree, checkpoint, compact, state.size, watch)
        if not hmac.compare_digest(compact.root(), state.root):
            raise VerificationFailed(
                f"the entries {url} serves do not give the root verified at size {state.size}"
            )
        _log.info(
            "%s: %d entries read again for %d newly watched subjects or issuers",
            state.origin,
            state.size,
            len(unread),
        )
        return [dataclasses.replace(e, detail="verified before it was watched") for e in events]

    def _read(
        self,
        url: str,
        tree: TileTree,
        checkpoint: Checkpoint,
        compact: CompactRange,
        stop: int,
        watch: Watch,
        uses: _Uses | None = None,
    ) -> list[MonitorEvent]:
        """Append the entries from ``compact``'s size to ``stop`` to it, one entry bundle at
        a time (a first look at a large log holds one bundle, not every entry, before the
        root is known to match); the statements ``watch`` names among them. With ``uses``,
        the checks run on each entry too: what they read is added to it, and an entry whose
        uses cannot be read is reported."""
        events: list[MonitorEvent] = []
        index = compact.size
        while index < stop:
            end = min(stop, (index // TILE_WIDTH + 1) * TILE_WIDTH)
            for offset, entry in enumerate(tree.entries(index, end)):
                compact.append(leaf_hash(entry))
                events.extend(self._watched(url, checkpoint, index + offset, entry, watch))
                if uses is not None:
                    events.extend(self._checked(url, checkpoint, index + offset, entry, uses))
            index = end
        return events

    def _checked(
        self, url: str, checkpoint: Checkpoint, index: int, entry: bytes, uses: _Uses
    ) -> list[MonitorEvent]:
        """Run the checks on ``entry``: its one-time key uses are added to ``uses``; one
        check that cannot read them is a ``<kind>-malformed`` event (an entry that hides
        its uses behind bytes no check reads is not one to skip)."""
        events = []
        for check in self.checks:
            try:
                found = check.uses(entry)
            except IronrootError as exc:
                detail = f"its {check.label} cannot be read: {exc.detail[:200]}"
                _log.error("%s #%d: %s", shown(checkpoint.origin), index, shown(detail))
                events.append(
                    MonitorEvent(
                        check.kind + MALFORMED,
                        checkpoint.origin,
                        url,
                        checkpoint.size,
                        detail,
                        index=index,
                        entry_id=hashlib.sha256(entry).hexdigest(),
                    )
                )
                continue
            if found:
                uses.entries[index] = hashlib.sha256(entry).hexdigest()
                uses.found.extend((check.kind, index, use) for use in found)
        return events

    def _reused(
        self, url: str, checkpoint: Checkpoint, reuse: KeyReuse, entry_id: str
    ) -> MonitorEvent:
        """The event of ``reuse`` (found at ``url``'s ``checkpoint``)."""
        detail = (
            f"key {reuse.key_hash.hex()[:16]}… used leaf {reuse.leaf} for two signatures: "
            f"entry #{reuse.first_index} of {reuse.first_origin} and entry #{reuse.index} of "
            f"{reuse.origin}; a one-time key used twice lets anyone forge its signatures"
        )
        _log.error("%s", shown(detail))
        return MonitorEvent(
            reuse.kind + REUSED,
            reuse.origin,
            url,
            checkpoint.size,
            detail,
            index=reuse.index,
            entry_id=entry_id,
            extra={
                "key_hash": reuse.key_hash.hex(),
                "leaf": reuse.leaf,
                "signature_hash": reuse.signature_hash.hex(),
                "first_origin": reuse.first_origin,
                "first_index": reuse.first_index,
                "first_signature_hash": reuse.first_signature_hash.hex(),
            },
        )

    @staticmethod
    def _tree(url: str, fetcher: LogFetcher, checkpoint: Checkpoint) -> TileTree:
        """The tree ``url``'s tiles give at the checkpoint's size, whose root must be the
        checkpoint's (:class:`VerificationFailed` if not)."""
        tree = TileTree(fetcher, checkpoint.size)
        if not hmac.compare_digest(tree.root(), checkpoint.root):
            raise VerificationFailed(
                f"the tiles {url} serves do not give the root of its checkpoint at size "
                f"{checkpoint.size}"
            )
        return tree

    @staticmethod
    def _root_at(
        url: str, tree: TileTree, checkpoint: Checkpoint, size: int
    ) -> tuple[bytes, list[bytes]]:
        """The root at ``size`` of ``tree`` (whose root, the checkpoint's, was checked) and
        the explicit consistency proof that gives it."""
        proof = explicit_consistency_proof(size, checkpoint.size, tree.node)
        old_root, new_root = fork_roots(size, checkpoint.size, proof)
        if not hmac.compare_digest(new_root, checkpoint.root):
            # The proof's nodes are not those of the tree whose root was checked: the tiles
            # disagree with each other, which proves nothing about the log.
            raise VerificationFailed(
                f"the tiles {url} serves give the root of its checkpoint at size "
                f"{checkpoint.size} but not a consistency proof that leads to it"
            )
        return old_root, proof

    def _behind(self, url: str, note: bytes, checkpoint: Checkpoint, state: LogState) -> None:
        """A signed checkpoint smaller than the verified one: kept to be checked against the
        verified tree (module docs), and refused for now."""
        if checkpoint.size == 0:
            if not hmac.compare_digest(checkpoint.root, EMPTY_ROOT):
                raise VerificationFailed(f"{url} serves an empty tree with another root")
        elif not self.store.add_behind(
            Behind(checkpoint.origin, checkpoint.size, checkpoint.root, note, url, self._clock())
        ):
            # Never drop one kept unsettled to make room: it may be the only signed trace of
            # a fork shown once. Refuse this one, loudly, until a round settles the others.
            detail = (
                f"{url} serves {checkpoint.origin} at size {checkpoint.size}, smaller than the "
                f"size {state.size} already verified, and the monitor already keeps "
                f"{MAX_BEHIND} smaller checkpoints of it not yet proven consistent or a fork: "
                "this one is not kept (none kept is dropped); a round that reads the verified "
                "tree settles them"
            )
            _log.error("%s", detail)
            raise _log_limit(detail, code="behind-limit")
        raise InconsistentCheckpoint(
            f"{url} serves {checkpoint.origin} at size {checkpoint.size}, smaller than the "
            f"size {state.size} already verified: the log went back, or {url} is behind it or "
            "serves a split view; its signed checkpoint is kept and proven consistent or a "
            "fork at the next round that reads the verified tree"
        )

    def _settle(
        self,
        url: str,
        tree: TileTree,
        note: bytes,
        checkpoint: Checkpoint,
        behind: Sequence[Behind],
    ) -> list[MonitorEvent]:
        """Prove each smaller checkpoint kept consistent with ``tree`` (whose root, that of the
        signed ``note`` = ``checkpoint``, was checked) or a fork; each is then dropped."""
        events: list[MonitorEvent] = []
        for kept in behind:
            if kept.size >= tree.size:
                continue  # not below this tree: a later round settles it
            # one kept by an earlier Ironroot holds the URL as given
            kept = dataclasses.replace(kept, url=_shown_url(kept.url))
            old_root, proof = self._root_at(url, tree, checkpoint, kept.size)
            if hmac.compare_digest(old_root, kept.root):
                events.append(
                    MonitorEvent(
                        "behind",
                        kept.origin,
                        kept.url,
                        kept.size,
                        f"consistent with size {tree.size}: a mirror behind the log",
                    )
                )
            else:
                why = (
                    f"the tree at size {tree.size} served by {url} does not extend the "
                    f"checkpoint at size {kept.size} served by {kept.url}"
                )
                first = LogState(kept.origin, kept.size, kept.root, kept.note, (), kept.seen)
                events.append(self._fork(kept.url, first, note, checkpoint, tuple(proof), why))
            self.store.drop_behind(kept)
        return events

    def _advance(
        self,
        url: str,
        tree: TileTree,
        state: LogState,
        note: bytes,
        checkpoint: Checkpoint,
    ) -> list[MonitorEvent]:
        compact = CompactRange(state.size, state.compact)
        uses = _Uses()
        events = self._read(url, tree, checkpoint, compact, checkpoint.size, self.watch, uses)
        if not hmac.compare_digest(compact.root(), checkpoint.root):
            raise VerificationFailed(
                f"the entries {url} serves do not give the root of its checkpoint at size "
                f"{checkpoint.size}"
            )
        reused = self.store.advance(
            LogState(
                checkpoint.origin,
                checkpoint.size,
                checkpoint.root,
                note,
                compact.hashes,
                self._clock(),
            ),
            expected=state,
            watched=self.watch.items,  # the earlier entries too: _read_again read them
            uses=uses.found,
        )
        first = MonitorEvent(
            "checkpoint",
            checkpoint.origin,
            url,
            checkpoint.size,
            f"{checkpoint.size - state.size} new entries verified, consistent with size "
            f"{state.size}",
            extra={
                "previous_size": state.size,
                "root": base64.b64encode(checkpoint.root).decode("ascii"),
            },
        )
        alarms = [self._reused(url, checkpoint, r, uses.entries[r.index]) for r in reused]
        return [first, *events, *alarms]

    def _watched(
        self, url: str, checkpoint: Checkpoint, index: int, entry: bytes, watch: Watch
    ) -> list[MonitorEvent]:
        if not (watch.subjects or watch.issuers):
            return []
        detail = ""
        try:
            statement = SignedStatement.parse(entry)
        except IronrootError as exc:
            # Not a Signed Statement by this parser's rules; another party's parser may take
            # it, so one whose protected header still names a watched issuer or subject is
            # reported, saying so: a stricter parse must not hide it from the monitor.
            claims = _unchecked_claims(entry)
            if claims is None:
                return []  # not COSE_Sign1 with CWT claims: nothing to watch in it
            iss, sub = claims
            detail = (
                f"does not parse as a Signed Statement ({exc.detail[:200]}); its iss and sub "
                "are read unchecked"
            )
        else:
            iss, sub = statement.claims.iss, statement.claims.sub
        why = watch.matches(iss, sub)
        if not why:
            return []
        return [
            MonitorEvent(
                "statement",
                checkpoint.origin,
                url,
                checkpoint.size,
                index=index,
                entry_id=hashlib.sha256(entry).hexdigest(),
                iss=iss,
                sub=sub,
                watched=tuple(why),
                detail=detail,
            )
        ]

    def _fork(
        self,
        url: str,
        state: LogState,
        note: bytes,
        checkpoint: Checkpoint,
        proof: tuple[bytes, ...],
        why: str,
    ) -> MonitorEvent:
        evidence = ForkProof(
            origin=checkpoint.origin,
            first=state.note,
            second=note,
            proof=proof,
            detected_by=self.name,
            detected_at=self._clock(),
        )
        fork_id = self.store.add_fork(checkpoint.origin, evidence.encode(), self._clock())
        detail = f"{why} (verified at size {state.size}, served at size {checkpoint.size})"
        _log.error("fork of %s at %s: %s", shown(checkpoint.origin), url, detail)
        return MonitorEvent(
            "fork", checkpoint.origin, url, checkpoint.size, detail, fork_id=fork_id
        )

    @staticmethod
    def raise_for(events: Sequence[MonitorEvent]) -> None:
        """Raise :class:`ForkDetected` if ``events`` holds a fork."""
        for event in events:
            if event.kind == "fork":
                raise ForkDetected(f"{event.origin}: {event.detail}")

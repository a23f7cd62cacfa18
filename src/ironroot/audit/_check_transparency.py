"""The ``transparency`` step of an audit check (12 in :mod:`ironroot.audit._verify`).

Every checkpoint is by a trusted log and witnessed as the trust requires, and every receipt by
a trusted service in the bundle is proven under one (the proofs: :mod:`ironroot.audit._proofs`);
and what a report says when the trust pairs no receipt key with its log (:data:`UNPAIRED`).
"""

from __future__ import annotations

from typing import Final

from ironroot.audit._context import STATEMENT, Context, is_transparent
from ironroot.audit._proofs import verify_log_proofs

__all__ = ["UNPAIRED", "check_transparency"]


UNPAIRED: Final = (
    "the trust file pairs no receipt key with its log ([[transparency.logs]]): a receipt is "
    "accepted under any trusted log's checkpoint"
)
"""What a report says when the trust does not pair receipt keys with logs (a caveat, and a
line of the ``transparency`` step)."""


def check_transparency(ctx: Context) -> list[str]:
    statements = {
        name: data
        for name, data in ctx.bundle.members.items()
        if (STATEMENT.fullmatch(name) or name.startswith("hsm/checkpoint-"))
        and is_transparent(data)
    }
    logs = []
    number = 0
    while f"transparency/{number}/checkpoint" in ctx.bundle.members:
        logs.append(
            (
                ctx.member(f"transparency/{number}/checkpoint"),
                ctx.member(f"transparency/{number}/proofs.cbor"),
            )
        )
        number += 1
    lines: list[str] = []
    checked = verify_log_proofs(
        statements,
        logs,
        service_keys=ctx.trust.platform.service_keys,
        checkpoint_keys=ctx.trust.checkpoint_keys,
        witnesses=ctx.trust.witnesses,
        witness_quorum=ctx.trust.witness_quorum,
        now=int(ctx.at.timestamp()),
        note=lines.append,
        paired=ctx.trust.logs,
        issuer=ctx.trust.platform.service_issuer,
    )
    lines.append(f"every trusted receipt of {len(statements)} logged statement(s) is covered")
    if ctx.trust.logs:
        lines.append(
            "each receipt is proven under its own service's log "
            f"({len(ctx.trust.logs)} paired logs)"
        )
    else:
        lines.append(UNPAIRED)
    for log in checked:
        if log.newest_receipt is not None:
            ctx.signed(log.newest_receipt, f"a receipt of {log.checkpoint.origin} (iat)")
    return lines

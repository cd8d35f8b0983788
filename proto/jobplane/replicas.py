"""What the server replicas, their clients and their agents agree on beyond the contract:
how a list of server addresses is written, and the metadata a follower answers with when a
call must reach the leader itself.

Several replicas share one PostgreSQL database (issue 16): one leads, the others serve reads
and watches and forward changes. Clients and agents take every replica's address,
comma-separated (``a:7070,b:7070,c:7070``, in ``--server`` or ``$JOBPLANE_SERVER``).
"""

from __future__ import annotations

# Trailing metadata of a call a follower refuses because only the leader can take it (an
# agent's Connect stream): where the leader is, for clients (LEADER_ADDRESS) and for agents'
# mutual-TLS link (LEADER_AGENT_ADDRESS). Empty when no replica leads just now.
LEADER_ADDRESS = "jobplane-leader"
LEADER_AGENT_ADDRESS = "jobplane-leader-agent"
# Request metadata a follower adds when it forwards a call to the leader: the identity it
# authenticated. The leader believes it only over a link authenticated with a replica's
# certificate from the shared CA.
FORWARDED_IDENTITY = "jobplane-forwarded-identity"
# Set by a follower on what it forwards, so that a leader that has just stepped down does not
# forward it once more.
FORWARDED_BY = "jobplane-forwarded-by"


def split_addresses(text: str) -> list[str]:
    """`a:7070, b:7070,c:7070` as ['a:7070', 'b:7070', 'c:7070']: order kept, blanks and
    repeats dropped."""
    seen: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if part and part not in seen:
            seen.append(part)
    return seen

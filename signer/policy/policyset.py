"""PolicySet: every loaded policy, indexed for the questions callers ask.

Built only by `signer.policy.loader.load_policies` (or directly in tests),
after every file validated: a PolicySet is always complete and consistent
(unique policy names, at most one settings entry per signer). It is immutable,
so the controller can swap in a reloaded set atomically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from signer.models import Outcome
from signer.policy.schema import DEFAULT_MAX_DNS_NAMES, Policy, SignerSettings


@dataclass(frozen=True, slots=True)
class PolicySet:
    policies: tuple[Policy, ...]
    """In load order (files sorted by name, then position): the order of reasons."""
    signers: Mapping[str, SignerSettings] = field(default_factory=lambda: MappingProxyType({}))
    origins: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Policy name -> "file:line" where it is defined, for explanations."""
    _by_signer: Mapping[str, tuple[Policy, ...]] = field(init=False, repr=False, compare=False)
    _by_name: Mapping[str, Policy] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_signer: dict[str, list[Policy]] = {name: [] for name in self.signers}
        by_name: dict[str, Policy] = {}
        for policy in self.policies:
            if policy.name in by_name:
                raise ValueError(f"duplicate policy name {policy.name!r}")
            by_name[policy.name] = policy
            for signer_name in policy.signer_names:
                by_signer.setdefault(signer_name, []).append(policy)
        object.__setattr__(
            self, "_by_signer", MappingProxyType({k: tuple(v) for k, v in by_signer.items()})
        )
        object.__setattr__(self, "_by_name", MappingProxyType(by_name))

    @classmethod
    def of(
        cls,
        policies: Iterable[Policy],
        signers: Iterable[SignerSettings] = (),
        origins: Mapping[str, str] | None = None,
    ) -> PolicySet:
        return cls(
            policies=tuple(policies),
            signers=MappingProxyType({s.name: s for s in signers}),
            origins=MappingProxyType(dict(origins or {})),
        )

    @property
    def signer_names(self) -> frozenset[str]:
        """Signer names this set governs: named by a policy or by a `signers:` entry."""
        return frozenset(self._by_signer)

    def governs(self, signer_name: str) -> bool:
        return signer_name in self._by_signer

    def policies_for(self, signer_name: str) -> tuple[Policy, ...]:
        return self._by_signer.get(signer_name, ())

    def policy(self, name: str) -> Policy | None:
        return self._by_name.get(name)

    def when_no_policy_applies(self, signer_name: str) -> Outcome:
        """ABSTAIN (leave Pending for a human) unless the signer's settings say deny."""
        settings = self.signers.get(signer_name)
        if settings is not None and settings.when_no_policy_applies == "deny":
            return Outcome.DENY
        return Outcome.ABSTAIN

    def max_dns_names(self, signer_name: str) -> int:
        """The signer's default for policies that set no `allowed.maxDnsNames`."""
        settings = self.signers.get(signer_name)
        return settings.max_dns_names if settings is not None else DEFAULT_MAX_DNS_NAMES

    def max_lifetime(self, signer_name: str, policy_name: str | None) -> timedelta | None:
        """The approving policy's lifetime cap for this signer, None if it sets none.

        None also when the policy does not govern `signer_name` (e.g. a stale
        name after a reload): the signer then applies its own default cap.
        """
        if policy_name is None:
            return None
        policy = self._by_name.get(policy_name)
        if policy is None or signer_name not in policy.signer_names:
            return None
        return policy.max_lifetime

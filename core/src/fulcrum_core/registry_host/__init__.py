"""The host's side of the registry: open the service, obey its policy while running, seed the demo.

admission.py AdmissionGate: before an entry point is imported, its approved release and files checked
host.py     RegistryHost: the service and (when the host obeys the registry) its policy watcher
policy.py   the registry's approved releases → one ``PluginPolicy`` per installed plugin
clients.py  the registry's approved releases → every plugin's OAuth client, the same on every host
watcher.py  PolicyWatcher: polls ``policy_version()`` and swaps the plugin policy without restart
recheck.py  RecheckSchedule: when the watcher asks again about a held-back entry point (backoff)
wheels.py   build a plugin's wheel from its source tree with ``uv build``, cached by content
demo.py     seed the demo publishers and approve the three plugins through submit → checks → review
"""

from fulcrum_core.registry_host.host import RegistryHost, attach_registry, registry_of
from fulcrum_core.registry_host.policy import plugin_policy
from fulcrum_core.registry_host.watcher import PolicyWatcher

__all__ = ["PolicyWatcher", "RegistryHost", "attach_registry", "plugin_policy", "registry_of"]

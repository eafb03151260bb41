"""`podium worker`: serves the agent plugins installed in this environment
to a Podium server, out of its process.

It joins the two halves of a Python worker: the plugin contract (podium.plugins,
this distribution's) that loads agents from the same entry points as the
server, and the protocol (podium.worker, the client's), which knows nothing of
the server. Agents see the same exception types as in-process: a refused LLM
call raises the contract's AgentError, an agent's error becomes the failure
the server would have recorded.
"""

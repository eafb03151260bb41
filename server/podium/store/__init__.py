"""Storage backends. Each implements the ports the engine
(`podium.engine.ports`) and governance (`podium.governance.ports`) define;
only the composition root (`podium.server.app`) picks one."""

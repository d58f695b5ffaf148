"""One router per resource: releases (models, releases, TUF), devices, telemetry, rollouts, distribution."""

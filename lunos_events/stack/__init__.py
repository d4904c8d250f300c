"""The production shape on one machine (`lunos-events stack`): servers from Debian's packages."""

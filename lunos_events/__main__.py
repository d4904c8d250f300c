from lunos_events.cli import main

main()

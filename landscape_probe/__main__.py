from landscape_probe.cli import main

main()

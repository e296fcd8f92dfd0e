from ganrun.cli.main import main

main()

from ganrun.cli import main

main()

from slurm.cli import main

main()

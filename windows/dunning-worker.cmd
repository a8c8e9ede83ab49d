@echo off
rem Keeps dunning-worker running on Windows (what supervisor's autorestart does
rem on Linux): started at boot by windows\dunning-worker.xml; when the worker
rem exits for any reason it is started again after 10 seconds.
rem --concurrency=2 gives the two parallel deliveries of supervisor's numprocs=2.
cd /d "%~dp0.."
if not exist logs mkdir logs
set RUST_LOG=info
:loop
echo ==== %date% %time% starting dunning-worker >> logs\worker.log
bin\dunning-worker.exe --sleep=3 --tries=3 --concurrency=2 >> logs\worker.log 2>&1
echo ==== %date% %time% dunning-worker exited with code %errorlevel%, restarting in 10 s >> logs\worker.log
rem "timeout" refuses to run without a console (as in a scheduled task); ping waits instead.
ping -n 11 127.0.0.1 > nul
goto loop

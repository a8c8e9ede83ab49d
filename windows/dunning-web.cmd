@echo off
rem Keeps dunning-web running on Windows: started at boot by windows\dunning-web.xml;
rem when it exits for any reason it is started again after 10 seconds.
rem It listens on DUNNING_WEB_LISTEN from C:\dunning\.env (default 127.0.0.1:8080).
cd /d "%~dp0.."
if not exist logs mkdir logs
set RUST_LOG=info
:loop
echo ==== %date% %time% starting dunning-web >> logs\web.log
bin\dunning-web.exe >> logs\web.log 2>&1
echo ==== %date% %time% dunning-web exited with code %errorlevel%, restarting in 10 s >> logs\web.log
rem "timeout" refuses to run without a console (as in a scheduled task); ping waits instead.
ping -n 11 127.0.0.1 > nul
goto loop

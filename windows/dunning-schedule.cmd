@echo off
rem Dunning scheduler run for Windows Task Scheduler (windows\dunning-schedule.xml):
rem queues today's reminders, appends the output to logs\schedule.log and returns
rem the scheduler's exit code (0 ok, 1 runtime failure, 2 configuration), which
rem Task Scheduler shows as "Last Run Result" (0x0, 0x1, 0x2).
rem Expects the layout of scripts/install: C:\dunning\bin, C:\dunning\.env,
rem C:\dunning\windows\this-file.
cd /d "%~dp0.."
if not exist logs mkdir logs
echo ==== %date% %time% >> logs\schedule.log
bin\dunning-schedule.exe run >> logs\schedule.log 2>&1
exit /b %errorlevel%

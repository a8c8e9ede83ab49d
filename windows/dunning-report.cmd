@echo off
rem Dunning daily report for Windows Task Scheduler (windows\dunning-report.xml):
rem yesterday and today in Indonesian, sent to DUNNING_REPORT_EMAIL and/or
rem DUNNING_REPORT_WHATSAPP (set them in C:\dunning\.env); the output is appended
rem to logs\report.log and the exit code returned (0 ok, 1 not sent, 2 configuration).
rem Expects the layout of scripts/install: C:\dunning\bin, C:\dunning\.env,
rem C:\dunning\windows\this-file.
cd /d "%~dp0.."
if not exist logs mkdir logs
echo ==== %date% %time% >> logs\report.log
bin\dunning-schedule.exe report --send >> logs\report.log 2>&1
exit /b %errorlevel%

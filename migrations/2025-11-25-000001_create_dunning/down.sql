DROP TABLE workers;
DROP TABLE schedule_runs;
DROP TABLE channel_state;
DROP TABLE jobs;
DROP TABLE notifications;
DROP TABLE invoices;
DROP TABLE customers;

DROP TABLE payment_links;
DROP TABLE payments;

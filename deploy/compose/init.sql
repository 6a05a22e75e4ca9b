-- The local fleet's PostgreSQL, first start (deploy/compose.yaml): the role the gateway logs in
-- as, the control plane's role and database, and a table for the tenant `acme` to read.
create role tenantgate login;
create role controlplane login password 'controlplane-local-only';
create database controlplane owner controlplane;
create table hello as select 'acme''s own database' as greeting;
grant select on hello to tenantgate;

DROP TABLE notebook_invites;
DROP TABLE notebook_members;
